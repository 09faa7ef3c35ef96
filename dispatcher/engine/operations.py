"""What operators do to deliveries: list them, count them, send failed ones again.

The CLI (and any admin tool) reaches these through ``Dispatcher.deliveries``; nothing
outside the engine touches the delivery tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select, update

from dispatcher import log
from dispatcher.arguments import checked_methods
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Delivery, DeliveryStep, Event, Notification, Subscriber
from dispatcher.engine.doorbell import Doorbell
from dispatcher.enums import DeliveryStatus, EventStatus, Priority, Reason
from dispatcher.errors import ValidationError
from dispatcher.validation import check_limit, check_storable


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery as an operator lists it."""

    id: int
    notification_id: int
    subscriber_id: str
    type: str
    channel: str
    status: DeliveryStatus
    reason: str | None
    attempts: int
    scheduled_for: datetime | None
    detail: str | None


@dataclass(frozen=True)
class RetryResult:
    """Which deliveries went back to ``pending``, and which were not failed (or unknown)."""

    requeued: list[int]
    skipped: list[int]


@dataclass(frozen=True)
class DeliveryStats:
    """Deliveries counted by channel and status, and by reason."""

    by_channel: dict[str, dict[DeliveryStatus, int]]
    by_reason: dict[str, int]


@checked_methods
class Deliveries:
    """``Dispatcher.deliveries``: the operator's view of delivery rows."""

    def __init__(self, store: Store, doorbell: Doorbell) -> None:
        self.store = store
        self._doorbell = doorbell

    def list(
        self,
        *,
        status: DeliveryStatus | str | None = None,
        channel: str | None = None,
        subscriber_id: str | None = None,
        limit: int = 50,
    ) -> list[DeliveryRow]:
        """The newest deliveries first, optionally filtered."""
        stmt = (
            select(Delivery, Notification.type, Subscriber.external_id)
            .join(Notification, Notification.id == Delivery.notification_id)
            .join(Subscriber, Subscriber.id == Notification.subscriber_id)
            .order_by(Delivery.id.desc())
            .limit(check_limit(limit))
        )
        if status:
            try:
                wanted = DeliveryStatus(status)
            except ValueError:
                known = ", ".join(s.value for s in DeliveryStatus)
                raise ValidationError(f"unknown status {status!r}; use one of: {known}") from None
            stmt = stmt.where(Delivery.status == wanted)
        if channel:
            stmt = stmt.where(Delivery.channel == check_storable(channel, "channel"))
        if subscriber_id:
            stmt = stmt.where(
                Subscriber.external_id == check_storable(subscriber_id, "subscriber_id")
            )
        with self.store.session() as s:
            return [
                DeliveryRow(
                    id=row.id,
                    notification_id=row.notification_id,
                    subscriber_id=external_id,
                    type=type_name,
                    channel=row.channel,
                    status=row.status,
                    reason=row.reason,
                    attempts=row.attempts,
                    scheduled_for=row.scheduled_for,
                    detail=row.detail,
                )
                for row, type_name, external_id in s.execute(stmt)
            ]

    def retry(self, ids: Iterable[int], *, now: datetime | None = None) -> RetryResult:
        """Send failed deliveries again: attempts start over, a trail step records the
        operator's retry (``explain`` shows it), and each is rung on its event's queue
        (a campaign's on the bulk queue)."""
        now = now or utcnow()
        wanted = sorted(set(ids))
        with self.store.session(write=True) as s:
            rows = s.execute(
                update(Delivery)
                .where(Delivery.id.in_(wanted), Delivery.status == DeliveryStatus.FAILED)
                .values(
                    status=DeliveryStatus.PENDING,
                    attempts=0,
                    scheduled_for=now,
                    updated_at=now,
                    lease_until=None,
                    reason=None,
                    detail=None,
                )
                .returning(
                    Delivery.id, Delivery.priority, Delivery.notification_id, Delivery.channel
                )
            ).all()
            requeued = sorted(r.id for r in rows)
            if requeued:
                s.execute(
                    insert(DeliveryStep),
                    [
                        {
                            "delivery_id": delivery_id,
                            "at": now,
                            "status": DeliveryStatus.PENDING,
                            "reason": Reason.OPERATOR_RETRY.value,
                            "detail": "sent again by an operator; attempts start over",
                        }
                        for delivery_id in requeued
                    ],
                )
                campaign = dict(
                    s.execute(
                        select(Notification.id, Event.campaign_id)
                        .join(Event, Event.id == Notification.event_id)
                        .where(Notification.id.in_({r.notification_id for r in rows}))
                    ).all()
                )
        groups: dict[tuple[Priority, bool, str], list[int]] = {}
        for row in rows:
            bulk = campaign.get(row.notification_id) is not None
            groups.setdefault((row.priority, bulk, row.channel), []).append(row.id)
        for (priority, bulk, channel), group in groups.items():
            self._doorbell.deliver(
                sorted(group), priority, bulk=bulk, channel=channel, via="operator retry"
            )
        if requeued:
            log.info("deliveries.retried", count=len(requeued), first_delivery_id=requeued[0])
        return RetryResult(requeued, sorted(set(wanted) - set(requeued)))

    def unsettled(self) -> int:
        """Events still waiting for fan-out plus deliveries not yet in a final state
        (``sent``, ``failed``, ``skipped``); 0 when everything stored so far has settled."""
        final = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
        with self.store.session() as s:
            events = s.scalar(
                select(func.count()).select_from(Event).where(Event.status == EventStatus.PENDING)
            )
            deliveries = s.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.status.not_in(final))
            )
        return int(events or 0) + int(deliveries or 0)

    def stats(self) -> DeliveryStats:
        """Counts by channel and status, and by reason."""
        with self.store.session() as s:
            counts = s.execute(
                select(Delivery.channel, Delivery.status, func.count()).group_by(
                    Delivery.channel, Delivery.status
                )
            ).all()
            reasons = s.execute(
                select(Delivery.reason, func.count())
                .where(Delivery.reason.is_not(None))
                .group_by(Delivery.reason)
            ).all()
        by_channel: dict[str, dict[DeliveryStatus, int]] = {}
        for channel, status, n in counts:
            by_channel.setdefault(channel, {})[status] = n
        return DeliveryStats(by_channel, {str(reason): n for reason, n in reasons})
