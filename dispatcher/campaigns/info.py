"""What ``d.campaigns`` returns: a campaign, its runs and their progress."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RunInfo:
    """One run of a campaign and its progress."""

    id: int
    occurrence: datetime
    status: str
    targeted: int
    created: int
    chunks: int
    started_at: datetime
    finished_at: datetime | None
    event_id: int | None
    #: Deliveries by outcome: ``sent``, ``skipped``/``deferred``/``failed`` by reason,
    #: ``in_flight``, and per channel.
    progress: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("occurrence", "started_at", "finished_at"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        return out


@dataclass(frozen=True)
class CampaignInfo:
    """A campaign as the API returns it."""

    id: int
    name: str
    type: str
    data: dict[str, Any]
    audience: dict[str, Any]
    channels: list[str]
    priority: str
    send_rates: dict[str, int]
    start_at: datetime | None
    cron: str | None
    timezone: str
    end_at: datetime | None
    next_run_at: datetime | None
    status: str
    created_at: datetime
    #: Newest first (only the newest has its progress filled in by ``list``).
    runs: list[RunInfo] = field(default_factory=list)
    #: The campaign's own templates, channel -> locale -> part -> source (empty: the
    #: type's templates are the content); filled in by ``get``, not by ``list``.
    templates: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    #: The key its own templates are rendered by (None without them).
    content: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("start_at", "end_at", "next_run_at", "created_at"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        out["runs"] = [r.to_dict() for r in self.runs]
        out.pop("content")
        return out


def run_info(row: Any, progress: dict[str, Any]) -> RunInfo:
    return RunInfo(
        id=row.id,
        occurrence=row.occurrence,
        status=row.status,
        targeted=row.targeted,
        created=row.created,
        chunks=row.chunks,
        started_at=row.started_at,
        finished_at=row.finished_at,
        event_id=row.event_id,
        progress=progress,
    )


def campaign_info(
    row: Any,
    runs: list[RunInfo],
    templates: dict[str, dict[str, dict[str, str]]] | None = None,
) -> CampaignInfo:
    return CampaignInfo(
        id=row.id,
        name=row.name,
        type=row.type,
        data=dict(row.data or {}),
        audience=dict(row.audience or {}),
        channels=list(row.channels or []),
        priority=str(row.priority),
        send_rates=dict(row.send_rates or {}),
        start_at=row.start_at,
        cron=row.cron,
        timezone=row.timezone,
        end_at=row.end_at,
        next_run_at=row.next_run_at,
        status=row.status,
        created_at=row.created_at,
        runs=runs,
        templates=templates or {},
        content=row.content,
    )
