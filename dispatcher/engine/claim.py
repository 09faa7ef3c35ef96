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
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from dispatcher.db.models import Delivery, table
from dispatcher.db.types import UTCDateTime
from dispatcher.enums import DeliveryStatus


def claimable(now: Any) -> Any:
    """The condition under which a delivery may be claimed at ``now`` (a value or a
    bind parameter)."""
    return or_(
        and_(
            _DELIVERIES.c.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SCHEDULED]),
            _DELIVERIES.c.scheduled_for <= now,
        ),
        and_(_DELIVERIES.c.status == DeliveryStatus.SENDING, _DELIVERIES.c.lease_until < now),
    )


_DELIVERIES = table(Delivery)
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
_NOW = bindparam("now", type_=UTCDateTime())
_DUE = and_(_DELIVERIES.c.id.in_(_IDS), claimable(_NOW))


def _claim_statement(condition: Any) -> Any:
    return (
        update(_DELIVERIES)
        .where(condition)
        .values(
            status=DeliveryStatus.SENDING,
            lease_until=bindparam("lease_until", type_=UTCDateTime()),
            attempts=_DELIVERIES.c.attempts + 1,
            updated_at=_NOW,
        )
        .returning(_DELIVERIES.c.id)
    )


#: Built once: constructing a statement costs more than running it on SQLite.
_CLAIM_SQLITE = _claim_statement(_DUE)
_CLAIM_POSTGRES = _claim_statement(
    _DELIVERIES.c.id.in_(
        select(_DELIVERIES.c.id).where(_DUE).with_for_update(skip_locked=True).scalar_subquery()
    )
)


def claim(session: Session, ids: Sequence[int], *, now: datetime, lease: timedelta) -> list[int]:
    """Claim those of ``ids`` that are due and unclaimed; return the claimed ids.

    Each claim counts as an attempt.
    """
    if not ids:
        return []
    conn = session.connection()
    stmt = _CLAIM_POSTGRES if conn.dialect.name == "postgresql" else _CLAIM_SQLITE
    params = {"ids": list(ids), "now": now, "lease_until": now + lease}
    return list(conn.scalars(stmt, params))
