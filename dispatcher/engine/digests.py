"""Flushing digests on time, and the operators' view of digest windows.

Beat's ``dispatcher.flush_digests`` finds the open windows whose time is up and delivers
their carriers through the ordinary deliverer (claim, fence, decide, send, record):
the digest policy closes each window in its carrier's claim transaction and the
carrier goes out as the digest (see :mod:`dispatcher.policies.digest`). There is no
second send path. Two beats, or a re-run, only find the carriers claimed or sent; a
flush rolled back half-way leaves the window open and its carrier due, for the next
tick. Windows whose carrier was skipped meanwhile are dropped here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Delivery, DigestWindow, Subscriber, table
from dispatcher.engine.claim import claimable
from dispatcher.engine.delivery import Deliverer, DeliverReport
from dispatcher.policies.digest import DROPPED, FLUSHED, OPEN, drop_dead

#: What a window can be, in the order it goes.
WINDOW_STATUSES = (OPEN, FLUSHED, DROPPED)
_W = table(DigestWindow)
_S = table(Subscriber)
_D = table(Delivery)


@dataclass
class FlushResult:
    """What one flush did."""

    #: Windows due whose carriers were handed to the deliverer.
    due: int = 0
    #: Windows dropped because their carrier was skipped.
    dropped: int = 0
    report: DeliverReport = field(default_factory=DeliverReport)


def flush_digests(
    store: Store, deliverer: Deliverer, *, now: datetime | None = None, limit: int = 500
) -> FlushResult:
    """Deliver the carriers of up to ``limit`` windows due at ``now``; safe to run twice."""
    now = now or utcnow()
    with store.session(write=True) as session:
        dropped = drop_dead(session, now)
        carriers = list(
            session.scalars(
                select(_W.c.delivery_id)
                .join(_D, _D.c.id == _W.c.delivery_id)
                # Not a carrier that quiet hours hold past its window: it would take a
                # place in every tick's batch until they end.
                .where(_W.c.status == OPEN, _W.c.closes_at <= now, claimable(now))
                .order_by(_W.c.closes_at, _W.c.id)
                .limit(limit)
            )
        )
    result = FlushResult(due=len(carriers), dropped=dropped)
    if carriers:
        result.report = deliverer.deliver(carriers, now=now)
        if result.report.counts.get("skipped"):  # a carrier skipped now: its window too
            with store.session(write=True) as session:
                result.dropped += drop_dead(session, now)
    return result


def list_windows(
    store: Store,
    *,
    status: str | None = None,
    subscriber: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Digest windows, newest first, as plain dicts (``dispatcher digests list``)."""
    stmt = (
        select(_W, _S.c.external_id)
        .join(_S, _S.c.id == _W.c.subscriber_id)
        .order_by(_W.c.id.desc())
        .limit(limit)
    )
    if status is not None:
        stmt = stmt.where(_W.c.status == status)
    if subscriber is not None:
        stmt = stmt.where(_S.c.external_id == subscriber)
    with store.session() as session:
        rows = session.execute(stmt).all()
    return [
        {
            "id": r.id,
            "subscriber": r.external_id,
            "type": r.type,
            "channel": r.channel,
            "status": r.status,
            "items": r.item_count,
            "opened_at": r.opened_at.isoformat(),
            "closes_at": r.closes_at.isoformat(),
            "flushed_at": r.flushed_at.isoformat() if r.flushed_at else None,
            "delivery_id": r.delivery_id,
        }
        for r in rows
    ]
