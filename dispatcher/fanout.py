"""Fan-out: one event becomes a notification per recipient and a delivery per channel.

Idempotent: notifications are unique per (event, subscriber) and deliveries per
(notification, channel), inserted with "on conflict do nothing", so running fan-out
twice yields the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from dispatcher import log
from dispatcher.catalog import Catalog
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store, insert_ignore
from dispatcher.db.models import Delivery, Event, Notification, Subscriber
from dispatcher.doorbell import Doorbell
from dispatcher.enums import DeliveryStatus, EventStatus

LOOKUP_CHUNK = 5000


@dataclass(frozen=True)
class FanoutResult:
    event_id: int
    notifications: int
    deliveries: int
    #: Recipients deleted between ``notify`` and fan-out.
    missing: int
    #: False when the event was already fanned out, cancelled, or not due yet.
    done: bool


def fanout(
    store: Store,
    catalog: Catalog,
    doorbell: Doorbell,
    event_id: int,
    *,
    batch_size: int = 500,
    now: datetime | None = None,
    deliver_inline: Callable[[Sequence[int]], object] | None = None,
    inline_limit: int = 0,
) -> FanoutResult:
    """Create the notifications and deliveries of ``event_id`` and ring for delivery.

    An event with at most ``inline_limit`` due deliveries is delivered right here with
    ``deliver_inline`` instead: a second trip through the broker would cost more than the
    sending. If that fails half-way, the rows are still pending and the sweep re-rings
    them.
    """
    now = now or utcnow()
    with store.session(write=True) as session:
        event = session.get(Event, event_id)
        if event is None:
            log.warning("fanout.no_event", event_id=event_id)
            return FanoutResult(event_id, 0, 0, 0, False)
        if event.status is not EventStatus.PENDING or event.send_at > now:
            return FanoutResult(event_id, 0, 0, 0, False)
        notification_type = catalog.get(event.type)
        priority, bulk = event.priority, event.campaign_id is not None

        subscriber_ids: list[int] = []
        recipients: list[str] = list(event.recipients)
        for start in range(0, len(recipients), LOOKUP_CHUNK):
            chunk = recipients[start : start + LOOKUP_CHUNK]
            subscriber_ids.extend(
                session.scalars(select(Subscriber.id).where(Subscriber.external_id.in_(chunk)))
            )
        insert_ignore(
            session,
            Notification,
            [
                {
                    "event_id": event_id,
                    "subscriber_id": sid,
                    "type": event.type,
                    "category": notification_type.category,
                    "priority": priority,
                    "created_at": now,
                }
                for sid in subscriber_ids
            ],
        )
        notification_ids = list(
            session.scalars(select(Notification.id).where(Notification.event_id == event_id))
        )
        insert_ignore(
            session,
            Delivery,
            [
                {
                    "notification_id": nid,
                    "channel": channel,
                    "priority": priority,
                    "status": DeliveryStatus.PENDING,
                    "scheduled_for": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for nid in notification_ids
                for channel in notification_type.channels
            ],
        )
        session.execute(
            update(Event)
            .where(Event.id == event_id)
            .values(status=EventStatus.FANNED_OUT, fanned_out_at=now)
        )
        due = session.execute(
            select(Delivery.id, Delivery.channel)
            .join(Notification, Notification.id == Delivery.notification_id)
            .where(Notification.event_id == event_id, Delivery.status == DeliveryStatus.PENDING)
            .order_by(Delivery.id)
        ).all()
    if deliver_inline is not None and 0 < len(due) <= inline_limit:
        deliver_inline([delivery_id for delivery_id, _ in due])
    else:
        by_channel: dict[str, list[int]] = {}
        for delivery_id, channel in due:
            by_channel.setdefault(channel, []).append(delivery_id)
        for ids in by_channel.values():
            doorbell.deliver(ids, priority, bulk=bulk, batch_size=batch_size)
    missing = len(recipients) - len(subscriber_ids)
    log.info(
        "event.fanned_out",
        event_id=event_id,
        notifications=len(notification_ids),
        deliveries=len(due),
        missing=missing or None,
    )
    return FanoutResult(event_id, len(notification_ids), len(due), missing, True)
