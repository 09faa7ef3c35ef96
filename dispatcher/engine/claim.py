"""Claiming deliveries: the step that makes duplicated broker messages harmless.

A worker may only send a delivery it has claimed: status moved to ``sending`` with a
lease, in one statement that succeeds for exactly one worker. PostgreSQL skips rows
another worker holds (``FOR UPDATE SKIP LOCKED``); SQLite, which silently ignores that
clause, gets a conditional ``UPDATE … RETURNING`` (SQLite serialises writers, so the
condition is checked and set atomically).

Claims are fenced (DESIGN principle 9): every claim writes a fresh token on its rows,
and every later write of that claim (a renewal, the outcome) applies only where the
row still carries it. A task whose lease ran out, and whose rows the sweep handed to
another process, finds its writes refused instead of overwriting the new holder's.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from dispatcher.db.models import Delivery, table
from dispatcher.db.types import UTCDateTime
from dispatcher.enums import DeliveryStatus


def process_name() -> str:
    """This process as ``claimed_by`` records it: host name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"[:255]


@dataclass(frozen=True)
class Ticket:
    """One claim: the token its rows carry and the process that holds them."""

    token: str = field(default_factory=lambda: secrets.token_hex(16))
    owner: str = field(default_factory=process_name)


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
            claim_token=bindparam("token"),
            claimed_by=bindparam("owner"),
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


def claim(
    session: Session,
    ids: Sequence[int],
    *,
    now: datetime,
    lease: timedelta,
    ticket: Ticket | None = None,
) -> list[int]:
    """Claim those of ``ids`` that are due and unclaimed for ``ticket`` (a new one if
    not given); return the claimed ids.

    Each claim counts as an attempt.
    """
    if not ids:
        return []
    ticket = ticket or Ticket()
    conn = session.connection()
    stmt = _CLAIM_POSTGRES if conn.dialect.name == "postgresql" else _CLAIM_SQLITE
    params = {
        "ids": list(ids),
        "now": now,
        "lease_until": now + lease,
        "token": ticket.token,
        "owner": ticket.owner,
    }
    return list(conn.scalars(stmt, params))


def held(token: Any) -> Any:
    """The condition that a delivery is still claimed with ``token`` (a value or a bind
    parameter)."""
    return and_(_DELIVERIES.c.status == DeliveryStatus.SENDING, _DELIVERIES.c.claim_token == token)


_RENEW = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id.in_(_IDS), held(bindparam("token")))
    .values(lease_until=bindparam("lease_until", type_=UTCDateTime()))
    .returning(_DELIVERIES.c.id)
)


def renew(
    session: Session, ids: Sequence[int], token: str, *, now: datetime, lease: timedelta
) -> list[int]:
    """Extend the lease of those of ``ids`` still claimed with ``token``; return them.

    The others were taken back (the lease ran out, or the sweep found this process
    gone): their new holder sends them, so this claim must not.
    """
    if not ids:
        return []
    params = {"ids": list(ids), "token": token, "lease_until": now + lease}
    return list(session.connection().scalars(_RENEW, params))
