"""Fan-out: one event becomes a notification per recipient and a delivery per channel.

Idempotent: notifications are unique per (event, subscriber) and deliveries per
(notification, channel), inserted with "on conflict do nothing", so running fan-out
twice yields the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update

from dispatcher import log
from dispatcher.catalog import Catalog
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store, insert_ignore
from dispatcher.db.models import Delivery, Event, Notification, Subscriber, table
from dispatcher.db.types import UTCDateTime
from dispatcher.delivery import Deliverer, EventFacts, NewDelivery
from dispatcher.doorbell import Doorbell
from dispatcher.enums import DeliveryStatus, EventStatus, Priority

LOOKUP_CHUNK = 5000


@dataclass(frozen=True)
class FanoutResult:
    event_id: int
    #: Rows this run created (0 when a racing duplicate found them made).
    notifications: int
    deliveries: int
    #: Recipients deleted between ``notify`` and fan-out.
    missing: int
    #: False when the event was already fanned out, cancelled, or not due yet.
    done: bool


_EVENTS = table(Event)
_NOTIFICATIONS = table(Notification)
_DELIVERIES = table(Delivery)
_SUBSCRIBERS = table(Subscriber)

#: Built once: constructing a statement costs more than running it on SQLite.
_LOAD_EVENT = select(
    _EVENTS.c.type,
    _EVENTS.c.payload,
    _EVENTS.c.recipients,
    _EVENTS.c.priority,
    _EVENTS.c.status,
    _EVENTS.c.send_at,
    _EVENTS.c.campaign_id,
).where(_EVENTS.c.id == bindparam("event_id"))
#: On PostgreSQL a second fan-out of the same event waits here and then finds it done.
_LOCK_EVENT = _LOAD_EVENT.with_for_update()
_BY_EXTERNAL_ID = _SUBSCRIBERS.c.external_id.in_(bindparam("external_ids", expanding=True))
_SUBSCRIBER_IDS = select(_SUBSCRIBERS.c.id.label("subscriber_id")).where(_BY_EXTERNAL_ID)
#: For an inline event: what delivering needs to know of each recipient.
_SUBSCRIBER_ROWS = select(
    _SUBSCRIBERS.c.id.label("subscriber_id"),
    _SUBSCRIBERS.c.external_id,
    _SUBSCRIBERS.c.email,
    _SUBSCRIBERS.c.locale,
    _SUBSCRIBERS.c.timezone,
).where(_BY_EXTERNAL_ID)
_MARK_FANNED_OUT = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"))
    .values(status=EventStatus.FANNED_OUT, fanned_out_at=bindparam("now", type_=UTCDateTime()))
)


def fanout(
    store: Store,
    catalog: Catalog,
    doorbell: Doorbell,
    event_id: int,
    *,
    batch_size: int = 500,
    now: datetime | None = None,
    deliverer: Deliverer | None = None,
    inline_limit: int = 0,
) -> FanoutResult:
    """Create the notifications and deliveries of ``event_id`` and ring for delivery.

    An event with at most ``inline_limit`` deliveries is delivered right here with
    ``deliverer`` instead: a second trip through the broker would cost more than the
    sending. Its deliveries are inserted already claimed and decided in the fan-out's
    own transaction, then sent after it commits. If sending fails half-way, the
    claimed rows' leases expire and the sweep delivers them again.
    """
    now = now or utcnow()
    with store.session(write=True) as session:
        conn = session.connection()
        lock = _LOCK_EVENT if store.is_postgres else _LOAD_EVENT
        event = conn.execute(lock, {"event_id": event_id}).one_or_none()
        if event is None:
            log.warning("fanout.no_event", event_id=event_id)
            return FanoutResult(event_id, 0, 0, 0, False)
        if event.status != EventStatus.PENDING or event.send_at > now:
            return FanoutResult(event_id, 0, 0, 0, False)
        notification_type = catalog.get(event.type)
        priority, bulk = Priority(event.priority), event.campaign_id is not None
        recipients: list[str] = list(event.recipients)
        # Decided up front (recipients deleted since ``notify`` only make it smaller).
        inline = (
            deliverer if len(recipients) * len(notification_type.channels) <= inline_limit else None
        )

        subscribers: dict[int, Any] = {}
        lookup = _SUBSCRIBER_IDS if inline is None else _SUBSCRIBER_ROWS
        for start in range(0, len(recipients), LOOKUP_CHUNK):
            chunk = recipients[start : start + LOOKUP_CHUNK]
            for row in conn.execute(lookup, {"external_ids": chunk}):
                subscribers[row.subscriber_id] = row
        # A pending event has no notifications yet (fan-out is one transaction, and
        # PostgreSQL holds the event's row lock), so what the inserts return is all.
        notifications = insert_ignore(
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
                for sid in subscribers
            ],
            returning=(_NOTIFICATIONS.c.id, _NOTIFICATIONS.c.subscriber_id),
        )
        # Inline deliveries are claimed as they are inserted: this is their first attempt.
        state: dict[str, Any] = {"status": DeliveryStatus.PENDING}
        if inline is not None:
            state = {
                "status": DeliveryStatus.SENDING,
                "attempts": 1,
                "lease_until": now + inline.lease,
            }
        due = insert_ignore(
            session,
            Delivery,
            [
                {
                    "notification_id": nid,
                    "channel": channel,
                    "priority": priority,
                    "scheduled_for": now,
                    "created_at": now,
                    "updated_at": now,
                    **state,
                }
                for nid, _ in notifications
                for channel in notification_type.channels
            ],
            returning=(_DELIVERIES.c.id, _DELIVERIES.c.notification_id, _DELIVERIES.c.channel),
        )
        conn.execute(_MARK_FANNED_OUT, {"event_id": event_id, "now": now})
        batch = None
        if inline is not None and due:
            subscriber_of = dict(notifications)
            batch = inline.prepare_claimed(
                session,
                EventFacts(event_id, event.type, event.payload, priority, now),
                [
                    NewDelivery(did, nid, channel, subscribers[subscriber_of[nid]])
                    for did, nid, channel in sorted(due)
                ],
                now,
            )
    if inline is not None:
        if batch is not None:
            inline.send(batch, now)
    else:
        by_channel: dict[str, list[int]] = {}
        for delivery_id, _, channel in sorted(due):
            by_channel.setdefault(channel, []).append(delivery_id)
        for ids in by_channel.values():
            doorbell.deliver(ids, priority, bulk=bulk, batch_size=batch_size)
    missing = len(recipients) - len(subscribers)
    log.info(
        "event.fanned_out",
        event_id=event_id,
        notifications=len(notifications),
        deliveries=len(due),
        missing=missing or None,
    )
    return FanoutResult(event_id, len(notifications), len(due), missing, True)
