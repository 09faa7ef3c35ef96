"""Helpers shared by the campaign tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from dispatcher import Dispatcher
from dispatcher.db.models import Delivery, Notification, Subscriber, table
from dispatcher.worker import Runtime
from tests.conftest import runtime

#: Templates of the campaign tests' own types (kept out of tests/templates, which the
#: template checks read with only the suite's registered types).
CAMPAIGN_TEMPLATES = Path(__file__).resolve().parent / "templates"


def use_campaign_templates(d: Dispatcher) -> None:
    """Let ``d`` render the campaign test types (before its renderer is first used)."""
    if CAMPAIGN_TEMPLATES not in d.settings.extra_templates_dirs:
        d.settings.extra_templates_dirs.append(CAMPAIGN_TEMPLATES)
    d.__dict__.pop("renderer", None)


PAYOUT = {"payout_id": 7, "amount": "12.00"}


def add_subscribers(
    d: Dispatcher, count: int, *, start: int = 0, attributes: Any = None, **columns: Any
) -> list[str]:
    """Insert ``count`` subscribers ``s<start>`` … in one statement; returns their ids."""
    rows = [
        {
            "external_id": f"s{i:06d}",
            "email": columns.get("email", f"s{i}@example.org"),
            "locale": columns.get("locale", "en"),
            "timezone": "UTC",
            "attributes": attributes(i) if callable(attributes) else (attributes or {}),
        }
        for i in range(start, start + count)
    ]
    with d.store.session(write=True) as s:
        s.connection().execute(insert(table(Subscriber)), rows)
    return [r["external_id"] for r in rows]


def run_all(d: Dispatcher, run_id: int, limit: int = 1000) -> int:
    """Run chunks in-process until the run stops; returns chunks that created rows."""
    rt: Runtime = runtime(d)
    for chunks in range(limit):
        if not rt.campaign_chunk(run_id).more:
            return chunks
    raise AssertionError("run did not end")


def notified(d: Dispatcher, event_id: int | None = None) -> list[int]:
    """Subscriber pks with a notification (of ``event_id``), sorted, with repeats."""
    with d.store.session() as s:
        q = select(Notification.subscriber_id)
        if event_id is not None:
            q = q.where(Notification.event_id == event_id)
        return sorted(s.scalars(q))


def delivery_counts(d: Dispatcher) -> dict[tuple[str, str, str | None], int]:
    with d.store.session() as s:
        rows = s.execute(
            select(Delivery.channel, Delivery.status, Delivery.reason, func.count()).group_by(
                Delivery.channel, Delivery.status, Delivery.reason
            )
        ).all()
    return {(c, str(st), r): n for c, st, r, n in rows}
