"""Named, reusable segments: ``d.campaigns.segments``.

A segment is a filter on subscriber attributes with a name, e.g. ``north-sellers`` =
``{"role": "seller", "region": "north"}``. A campaign's audience names it
(``{"segment": "north-sellers", "exclude": [...]}``); its filter is read when a run
starts, so a segment edited after the campaign was saved applies to the next run, and
the run records whom it resolved to, as for any audience. A segment that a campaign which
may still run names (any but a cancelled one: a completed campaign can be started again)
cannot be deleted.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from dispatcher import log
from dispatcher.campaigns.definition import Audience, check_filter, check_segment_name
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Campaign, Segment, table
from dispatcher.enums import CampaignStatus
from dispatcher.errors import (
    InvalidCampaignError,
    NotFoundError,
    SegmentInUseError,
    ValidationError,
)
from dispatcher.validation import check_storable

_G = table(Segment)
_C = table(Campaign)
#: The one state from which a campaign never starts a run again (a completed one can be
#: started by hand), so the segments of all others must stay.
FINAL = CampaignStatus.CANCELLED.value
MAX_DESCRIPTION = 2000


@dataclass(frozen=True)
class SegmentInfo:
    """A segment as the API returns it."""

    id: int
    name: str
    filter: dict[str, Any]
    description: str | None
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["updated_at"] = self.updated_at.isoformat()
        return out


def _info(row: Any) -> SegmentInfo:
    return SegmentInfo(
        row.id, row.name, dict(row.filter or {}), row.description, row.created_at, row.updated_at
    )


def _description(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise ValidationError(
            f"description must be a string of at most {MAX_DESCRIPTION} characters"
        )
    check_storable(value, "description")
    return value


def _lock(conn: Connection, name: str, *, share: bool) -> Any:
    """The segment's row, locked on PostgreSQL (shared by a campaign that names it,
    exclusive for a delete), so a delete and such a create never both succeed."""
    statement = select(_G).where(_G.c.name == name)
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update(read=share)
    return conn.execute(statement).one_or_none()


def check_exists(conn: Connection, name: str) -> None:
    """For a campaign being saved in ``conn``'s transaction: the segment it names exists
    (and stays until that transaction ends).

    Raises:
        InvalidCampaignError: (``field="audience.segment"``) no such segment.
    """
    if _lock(conn, name, share=True) is None:
        raise InvalidCampaignError(
            f"audience.segment: no segment {name!r}; create it first "
            "(d.campaigns.segments.create or `dispatcher campaigns segments create`)",
            field="audience.segment",
        )


def resolve(conn: Connection, audience: Audience) -> Audience | None:
    """``audience`` with its segment's filter as it is now; None when the segment is gone
    (only a hand-made change to the table can do that: delete refuses)."""
    if audience.segment is None:
        return audience
    row = conn.execute(select(_G.c.filter).where(_G.c.name == audience.segment)).one_or_none()
    if row is None:
        log.error("campaign.segment_missing", segment=audience.segment)
        return None
    return audience.with_segment(row.filter)


class Segments:
    """Create, list, show, update and delete named segments."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self, name: str, filter: Mapping[str, Any], *, description: str | None = None
    ) -> SegmentInfo:
        """Save a segment.

        Raises:
            InvalidCampaignError: a malformed name (``field="name"``) or filter
                (``field="filter"``), or the name is taken (``field="name"``).
            ValidationError: a description that is too long or unstorable.
        """
        check_segment_name(name)
        checked = check_filter(filter, "filter")
        text = _description(description)
        now = utcnow()
        with self.store.session(write=True) as session:
            conn = session.connection()
            if conn.execute(select(_G.c.id).where(_G.c.name == name)).first() is not None:
                raise InvalidCampaignError(f"a segment named {name!r} exists", field="name")
            conn.execute(
                insert(_G),
                {
                    "name": name,
                    "filter": checked,
                    "description": text,
                    "created_at": now,
                    "updated_at": now,
                },
            )
        log.info("segment.created", segment=name)
        return self.get(name)

    def get(self, name: str) -> SegmentInfo:
        """The segment called ``name``.

        Raises:
            NotFoundError: no such segment.
        """
        with self.store.session() as session:
            row = session.connection().execute(select(_G).where(_G.c.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no segment {name!r}")
        return _info(row)

    def list(self) -> builtins.list[SegmentInfo]:
        """Every segment, by name."""
        with self.store.session() as session:
            rows = session.connection().execute(select(_G).order_by(_G.c.name)).all()
        return [_info(r) for r in rows]

    def update(
        self,
        name: str,
        *,
        filter: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> SegmentInfo:
        """Change a segment's filter and/or description; campaigns that name it use the
        new filter from their next run on.

        Raises:
            NotFoundError: no such segment.
            InvalidCampaignError: a malformed filter (``field="filter"``).
        """
        values: dict[str, Any] = {"updated_at": utcnow()}
        if filter is not None:
            values["filter"] = check_filter(filter, "filter")
        if description is not None:
            values["description"] = _description(description)
        with self.store.session(write=True) as session:
            result = session.connection().execute(
                update(_G).where(_G.c.name == name).values(**values)
            )
            if not result.rowcount:
                raise NotFoundError(f"no segment {name!r}")
        log.info("segment.updated", segment=name, fields=sorted(values))
        return self.get(name)

    def delete(self, name: str) -> None:
        """Delete a segment no campaign that may still run names.

        Raises:
            NotFoundError: no such segment.
            SegmentInUseError: a campaign that is not cancelled names it; ``campaigns``
                lists their ids.
        """
        with self.store.session(write=True) as session:
            conn = session.connection()
            if _lock(conn, name, share=False) is None:
                raise NotFoundError(f"no segment {name!r}")
            users = [
                (row.id, row.status)
                for row in conn.execute(
                    select(_C.c.id, _C.c.status, _C.c.audience)
                    .where(_C.c.status != FINAL)
                    .order_by(_C.c.id)
                )
                if (row.audience or {}).get("segment") == name
            ]
            if users:
                listed = ", ".join(f"{i} ({status})" for i, status in users)
                raise SegmentInUseError(
                    f"segment {name!r} is used by campaign(s) {listed}, which may still "
                    "start a run; cancel them first",
                    segment=name,
                    campaigns=[i for i, _ in users],
                )
            conn.execute(delete(_G).where(_G.c.name == name))
        log.info("segment.deleted", segment=name)
