"""Scheduled sends on time: beat's 1-second ``dispatcher.scheduled_tick`` rings each
event due within the next second for its own ``send_at``.

The sweep alone rings a scheduled event at its next 5-second pass, up to 5 s late. Here
each pending, scheduled event whose ``send_at`` falls within a second either side of
the tick gets a plain fan-out task (for it alone, past the drains' latch) with a
countdown to its time: at most a second on the broker, never the long ETAs PITFALLS
warns of; the row keeps the time. A tick that comes late or twice only rings it again:
fan-out re-reads the row and does nothing unless it is pending and due (a countdown that
ends early finds it not due yet, and the next tick or the sweep rings again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select

from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Event, table
from dispatcher.db.types import UTCDateTime
from dispatcher.engine.doorbell import Doorbell
from dispatcher.enums import EventStatus

#: How far either side of a tick an event is rung: one beat interval.
HORIZON = timedelta(seconds=1)

_E = table(Event)
_DUE_SOON = (
    select(_E.c.id, _E.c.priority, _E.c.send_at, _E.c.type)
    .where(
        _E.c.status == EventStatus.PENDING,
        _E.c.campaign_id.is_(None),
        # Scheduled (``notify`` stores ``send_at = created_at`` for an event due now,
        # which its own ring takes care of).
        _E.c.send_at > _E.c.created_at,
        _E.c.send_at > bindparam("after", type_=UTCDateTime()),
        _E.c.send_at <= bindparam("until", type_=UTCDateTime()),
    )
    .order_by(_E.c.send_at, _E.c.id)
    .limit(bindparam("limit"))
)


@dataclass(frozen=True)
class OnTimeResult:
    #: Events rung for their time.
    rung: int


def ring_due_soon(
    store: Store,
    doorbell: Doorbell,
    *,
    now: datetime | None = None,
    horizon: timedelta = HORIZON,
    limit: int = 1000,
) -> OnTimeResult:
    """Ring each scheduled event due in ``(now - horizon, now + horizon]`` with a
    countdown to its ``send_at``; returns how many were rung."""
    now = now or utcnow()
    with store.session() as session:
        parameters = {"after": now - horizon, "until": now + horizon, "limit": limit}
        due = session.connection().execute(_DUE_SOON, parameters).all()
    rung = 0
    for event in due:
        countdown = max(0.0, (event.send_at - now).total_seconds())
        if doorbell.fanout_at(event.id, event.priority, countdown, type_name=event.type):
            rung += 1
    return OnTimeResult(rung)
