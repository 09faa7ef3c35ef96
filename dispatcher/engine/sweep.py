"""The recovery sweep, run by beat every few seconds.

It re-rings the doorbell for work the database says is due but no worker holds:
events not fanned out, deliveries still pending after the grace period (their message
was lost), scheduled deliveries whose time has come (quiet hours, retries, rate limits)
and claims whose lease expired or whose process is gone (its liveness key expired: see
:mod:`dispatcher.engine.liveness`). Ringing twice is harmless because workers claim rows
before sending; a row taken back loses its claim token, so its old holder can no longer
record it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Row, and_, or_, select, update
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Delivery, Event
from dispatcher.engine.doorbell import Doorbell
from dispatcher.engine.liveness import Liveness
from dispatcher.enums import DeliveryStatus, EventStatus, Priority


@dataclass(frozen=True)
class SweepResult:
    events: int
    deliveries: int


def sweep(
    store: Store,
    doorbell: Doorbell,
    *,
    grace: timedelta,
    batch_size: int = 500,
    limit: int = 50_000,
    now: datetime | None = None,
    liveness: Liveness | None = None,
) -> SweepResult:
    """Re-ring due, unclaimed events and deliveries; returns how many were rung."""
    now = now or utcnow()
    stale = now - grace
    with store.session(write=True) as session:
        events = session.execute(
            select(Event.id, Event.priority, Event.campaign_id)
            .where(
                Event.status == EventStatus.PENDING,
                Event.send_at <= now,
                or_(Event.created_at <= stale, Event.send_at > Event.created_at),
            )
            .order_by(Event.id)
            .limit(limit)
        ).all()
        gone = _gone(session, liveness, now)
        due_condition = or_(
            and_(Delivery.status == DeliveryStatus.PENDING, Delivery.updated_at <= stale),
            and_(Delivery.status == DeliveryStatus.SCHEDULED, Delivery.scheduled_for <= now),
            and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now),
            _held_by(gone),
        )
        deliveries = _release(session, due_condition, now, limit)
    for event_id, priority, campaign_id in events:
        doorbell.fanout(event_id, priority, bulk=campaign_id is not None, via="swept")
    _ring(doorbell, deliveries, batch_size)
    if gone:
        log.warning("sweep.processes_gone", processes=len(gone), first=gone[0])
    if events or deliveries:
        log.info("sweep.rang", events=len(events), deliveries=len(deliveries))
    return SweepResult(len(events), len(deliveries))


def take_back_gone(
    store: Store,
    doorbell: Doorbell,
    liveness: Liveness,
    *,
    batch_size: int = 500,
    limit: int = 50_000,
    now: datetime | None = None,
) -> int:
    """Only the sweep's "process gone" part: release and re-ring the claims of processes
    whose liveness key expired; returns how many.

    Workers run it between batches (at most one of them every few seconds), because a
    worker busy with long batches may take the maintenance queue's sweep late: a
    restarted worker then takes back its dead predecessor's rows at its first batch.
    """
    now = now or utcnow()
    with store.session(write=True) as session:
        gone = _gone(session, liveness, now)
        if not gone:
            return 0
        deliveries = _release(session, _held_by(gone), now, limit)
    _ring(doorbell, deliveries, batch_size)
    log.warning(
        "sweep.processes_gone", processes=len(gone), first=gone[0], deliveries=len(deliveries)
    )
    return len(deliveries)


def _held_by(gone: list[str]) -> ColumnElement[bool]:
    return and_(Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_by.in_(gone))


def _release(
    session: Session, condition: ColumnElement[bool], now: datetime, limit: int
) -> Sequence[Row[int, Priority, str]]:
    """Make the rows matching ``condition`` pending again; return them to ring."""
    deliveries = session.execute(
        select(Delivery.id, Delivery.priority, Delivery.channel)
        .where(condition)
        .order_by(Delivery.id)
        .limit(limit)
    ).all()
    # Released rows become pending and are touched, so the next tick does not ring
    # them again while they wait in the queue; one still pending a grace period later
    # (its message was lost) is rung again.
    ids = [d.id for d in deliveries]
    for start in range(0, len(ids), 5000):
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids[start : start + 5000]))
            .where(condition)
            .values(
                status=DeliveryStatus.PENDING,
                updated_at=now,
                lease_until=None,
                claim_token=None,
                claimed_by=None,
            ),
            execution_options={"synchronize_session": False},
        )
    return deliveries


def _ring(
    doorbell: Doorbell, deliveries: Sequence[Row[int, Priority, str]], batch_size: int
) -> None:
    groups: dict[tuple[Priority, str], list[int]] = {}
    for delivery_id, priority, channel in deliveries:
        groups.setdefault((priority, channel), []).append(delivery_id)
    for (priority, channel), ids in groups.items():
        doorbell.deliver(ids, priority, batch_size=batch_size, channel=channel, via="swept")


def _gone(session: Session, liveness: Liveness | None, now: datetime) -> list[str]:
    """The processes holding unexpired claims whose liveness key has expired."""
    if liveness is None:
        return []
    owners = session.scalars(
        select(Delivery.claimed_by)
        .where(
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.lease_until >= now,
            Delivery.claimed_by.is_not(None),
        )
        .distinct()
    ).all()
    return sorted(liveness.gone([o for o in owners if o]))
