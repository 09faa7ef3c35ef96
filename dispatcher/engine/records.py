"""Recording what happened to deliveries: new states, retry back-off, explain steps."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Connection, Text, bindparam, func, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.channels.base import Outcome, RetryPolicy
from dispatcher.db.engine import Store
from dispatcher.db.models import Delivery, DeliveryStep, table
from dispatcher.db.types import UTCDateTime
from dispatcher.engine.claim import held
from dispatcher.enums import DeliveryStatus, Reason
from dispatcher.errors import TransientDeliveryError


@dataclass
class Record:
    """The new state of one delivery, written in bulk at the end of a batch."""

    delivery_id: int
    status: DeliveryStatus
    reason: str | None = None
    detail: str | None = None
    scheduled_for: datetime | None = None
    provider_id: str | None = None
    #: A deferral is not an attempt: give back the one the claim counted.
    refund_attempt: bool = False
    #: Already in the database (the channel wrote it with its side effect).
    written: bool = False


def record_for_outcome(
    outcome: Outcome, attempt: int, policy: RetryPolicy, now: datetime
) -> Record:
    """The new state of a delivery after its channel reported ``outcome``."""
    if outcome.error is None:
        return Record(
            outcome.delivery_id,
            DeliveryStatus.SENT,
            None,
            outcome.detail,
            provider_id=outcome.provider_id,
        )
    error = outcome.error
    if not outcome.transient:
        return Record(
            outcome.delivery_id,
            DeliveryStatus.FAILED,
            error.reason,
            str(error),
            provider_id=outcome.provider_id,
        )
    if attempt >= policy.max_attempts:
        return Record(
            outcome.delivery_id,
            DeliveryStatus.FAILED,
            Reason.RETRIES_EXHAUSTED,
            f"after {attempt} attempts: {error}",
        )
    assert isinstance(error, TransientDeliveryError)
    delay = error.retry_after or backoff(attempt, policy)
    return Record(
        outcome.delivery_id,
        DeliveryStatus.SCHEDULED,
        Reason.RETRYING,
        f"{error.reason}: {error}",
        scheduled_for=now + delay,
    )


_DELIVERIES = table(Delivery)
#: Built once: constructing a statement costs more than running it on SQLite.
_SENT_VALUES = {
    "status": DeliveryStatus.SENT,
    "sent_at": bindparam("now", type_=UTCDateTime()),
    "lease_until": None,
    "claim_token": None,
    "updated_at": bindparam("now", type_=UTCDateTime()),
    "reason": None,
    "detail": bindparam("detail"),
    "provider_id": bindparam("provider_id"),
}
_BY_IDS = _DELIVERIES.c.id.in_(bindparam("ids", expanding=True))
_MARK_SENT = update(_DELIVERIES).where(_BY_IDS).values(**_SENT_VALUES)
#: Only where the claim with ``token`` still holds: returns the rows it wrote.
_MARK_SENT_FENCED = (
    update(_DELIVERIES)
    .where(_BY_IDS, held(bindparam("token")))
    .values(**_SENT_VALUES)
    .returning(_DELIVERIES.c.id)
)


def write_records(
    store: Store, records: Sequence[Record], now: datetime, *, token: str | None = None
) -> list[Record]:
    """Write a batch's new states, and a step for every one that was not simply sent.

    With ``token``, only rows still claimed with it are written (see
    :mod:`dispatcher.engine.claim`); returns the records written.
    """
    if not records:
        return []
    if store.is_postgres and all(r.status is DeliveryStatus.SENT for r in records):
        # A group that was simply sent (the common case) is one statement: committed on
        # its own, without the round trips of BEGIN and COMMIT.
        with store.autocommit() as conn:
            refused = _mark_sent(conn, records, now, token)
        _claim_lost(refused)
        return [r for r in records if r.delivery_id not in refused]
    with store.session(write=True) as session:
        return write_records_in(session, records, now, token=token)


def _claim_lost(refused: set[int]) -> None:
    if refused:
        # Another process holds these now (this claim's lease ran out, or the sweep
        # found this process gone): its outcome is the one that counts.
        log.warning("delivery.claim_lost", count=len(refused), first_delivery_id=min(refused))


#: PostgreSQL: every sent row of a group with its own detail and provider id, in one
#: statement built once: ``UPDATE … FROM unnest(ids, details, provider ids)``.
_SENT_ROWS = (
    func.unnest(
        bindparam("ids", type_=ARRAY(BigInteger)),
        bindparam("details", type_=ARRAY(Text)),
        bindparam("provider_ids", type_=ARRAY(Text)),
    )
    .table_valued("id", "detail", "provider_id")
    .render_derived(name="sent")
)
_MARK_SENT_ROWS = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == _SENT_ROWS.c.id)
    .values(
        {**_SENT_VALUES, "detail": _SENT_ROWS.c.detail, "provider_id": _SENT_ROWS.c.provider_id}
    )
)
_MARK_SENT_ROWS_FENCED = _MARK_SENT_ROWS.where(held(bindparam("token"))).returning(_DELIVERIES.c.id)
#: SQLite (in process, so a statement per row costs no round trip): one row.
_MARK_SENT_ONE = (
    update(_DELIVERIES).where(_DELIVERIES.c.id == bindparam("delivery_id")).values(**_SENT_VALUES)
)
_MARK_SENT_ONE_FENCED = _MARK_SENT_ONE.where(held(bindparam("token")))


def _mark_sent(
    conn: Connection, sent: Sequence[Record], now: datetime, token: str | None
) -> set[int]:
    """Mark ``sent`` sent, each with its own detail and provider id; return the ids
    refused because the claim with ``token`` no longer holds them."""
    ids = [r.delivery_id for r in sent]
    details = {r.detail for r in sent}
    providers = {r.provider_id for r in sent}
    if len(details) == 1 and len(providers) == 1:
        params: dict[str, Any] = {
            "ids": ids,
            "now": now,
            "detail": details.pop(),
            "provider_id": providers.pop(),
        }
        if token is None:
            conn.execute(_MARK_SENT, params)
            return set()
        return set(ids) - set(conn.scalars(_MARK_SENT_FENCED, {**params, "token": token}))
    if conn.dialect.name == "postgresql":
        params = {
            "ids": ids,
            "details": [r.detail for r in sent],
            "provider_ids": [r.provider_id for r in sent],
            "now": now,
        }
        if token is None:
            conn.execute(_MARK_SENT_ROWS, params)
            return set()
        return set(ids) - set(conn.scalars(_MARK_SENT_ROWS_FENCED, {**params, "token": token}))
    refused: set[int] = set()
    statement = _MARK_SENT_ONE if token is None else _MARK_SENT_ONE_FENCED
    for r in sent:
        row = {
            "delivery_id": r.delivery_id,
            "now": now,
            "detail": r.detail,
            "provider_id": r.provider_id,
        }
        if conn.execute(statement, {**row, "token": token}).rowcount == 0 and token is not None:
            refused.add(r.delivery_id)
    return refused


def write_records_in(
    session: Session, records: Sequence[Record], now: datetime, *, token: str | None = None
) -> list[Record]:
    """:func:`write_records` inside the caller's transaction."""
    if not records:
        return []
    sent = [r for r in records if r.status is DeliveryStatus.SENT]
    others = [r for r in records if r.status is not DeliveryStatus.SENT]
    conn = session.connection()
    refused: set[int] = set()
    # Not a round trip per row: recording a group of in-flight emails must not cost more
    # than sending it. The detail and provider id (an email's server reply and
    # Message-ID) differ per row.
    if sent:
        refused.update(_mark_sent(conn, sent, now, token))
    kept: list[Record] = []
    for r in others:
        values: dict[str, Any] = {
            "status": r.status,
            "reason": r.reason,
            "detail": r.detail,
            "lease_until": None,
            "claim_token": None,
            "updated_at": now,
        }
        if r.scheduled_for is not None:
            values["scheduled_for"] = r.scheduled_for
        if r.refund_attempt:
            values["attempts"] = _DELIVERIES.c.attempts - 1
        if r.provider_id is not None:
            values["provider_id"] = r.provider_id
        statement = update(_DELIVERIES).where(_DELIVERIES.c.id == r.delivery_id)
        if token is not None:
            statement = statement.where(held(token))
        if conn.execute(statement.values(**values)).rowcount == 0 and token is not None:
            refused.add(r.delivery_id)
        else:
            kept.append(r)
    others = kept
    _claim_lost(refused)
    if others:
        session.execute(
            DeliveryStep.__table__.insert(),  # type: ignore[attr-defined]
            [
                {
                    "delivery_id": r.delivery_id,
                    "at": now,
                    "status": r.status,
                    "reason": r.reason,
                    "detail": r.detail,
                }
                for r in others
            ],
        )
    for r in others:
        log.info(
            "delivery." + r.status.value,
            delivery_id=r.delivery_id,
            reason=r.reason,
            until=r.scheduled_for.isoformat() if r.scheduled_for else None,
        )
    return [r for r in records if r.delivery_id not in refused]


def backoff(attempt: int, policy: RetryPolicy) -> timedelta:
    """Exponential back-off with "equal jitter": half fixed, half random."""
    ceiling = min(policy.cap_seconds, policy.base_seconds * (2 ** max(0, attempt - 1)))
    return timedelta(seconds=ceiling / 2 + random.uniform(0, ceiling / 2))
