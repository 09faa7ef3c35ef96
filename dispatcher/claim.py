"""Claiming deliveries: the step that makes duplicated broker messages harmless.

A worker may only send a delivery it has claimed: status moved to ``sending`` with a
lease, in one statement that succeeds for exactly one worker. PostgreSQL skips rows
another worker holds (``FOR UPDATE SKIP LOCKED``); SQLite, which silently ignores that
clause, gets a conditional ``UPDATE … RETURNING`` (SQLite serialises writers, so the
condition is checked and set atomically).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from dispatcher.db.models import Delivery
from dispatcher.enums import DeliveryStatus


def claimable(now: datetime) -> object:
    """The condition under which a delivery may be claimed at ``now``."""
    return or_(
        and_(
            Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SCHEDULED]),
            Delivery.scheduled_for <= now,
        ),
        and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now),
    )


def claim(session: Session, ids: Sequence[int], *, now: datetime, lease: timedelta) -> list[int]:
    """Claim those of ``ids`` that are due and unclaimed; return the claimed ids.

    Each claim counts as an attempt.
    """
    if not ids:
        return []
    condition = and_(Delivery.id.in_(list(ids)), claimable(now))  # type: ignore[arg-type]
    if session.get_bind().dialect.name == "postgresql":
        locked = select(Delivery.id).where(condition).with_for_update(skip_locked=True)
        condition = Delivery.id.in_(locked.scalar_subquery())
    stmt = (
        update(Delivery)
        .where(condition)
        .values(
            status=DeliveryStatus.SENDING,
            lease_until=now + lease,
            attempts=Delivery.attempts + 1,
            updated_at=now,
        )
        .returning(Delivery.id)
    )
    return list(session.scalars(stmt, execution_options={"synchronize_session": False}))
