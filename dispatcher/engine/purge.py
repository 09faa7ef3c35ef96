"""Retention: delete events whose every delivery is final and older than the retention period.

Deleting the event cascades to its notifications, deliveries and their steps. Inbox items
of purged events disappear with them, so keep ``retention_days`` longer than anyone looks
back in their inbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, exists, select

from dispatcher import log
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Delivery, Event, Notification
from dispatcher.enums import DeliveryStatus, EventStatus


@dataclass(frozen=True)
class PurgeResult:
    events: int


def purge(
    store: Store, *, retention: timedelta, batch: int = 1000, now: datetime | None = None
) -> PurgeResult:
    """Delete up to ``batch`` finished events created before ``now - retention``."""
    cutoff = (now or utcnow()) - retention
    unfinished = exists(
        select(Delivery.id)
        .join(Notification, Notification.id == Delivery.notification_id)
        .where(
            Notification.event_id == Event.id,
            Delivery.status.not_in([s for s in DeliveryStatus if s.is_final]),
        )
    )
    with store.session(write=True) as session:
        ids = list(
            session.scalars(
                select(Event.id)
                .where(
                    and_(
                        Event.created_at < cutoff,
                        Event.status != EventStatus.PENDING,
                        ~unfinished,
                    )
                )
                .order_by(Event.id)
                .limit(batch)
            )
        )
        if ids:
            # Children first: SQLite enforces ON DELETE CASCADE only with foreign_keys=ON,
            # which our engine sets, but an app's own connection may not.
            notification_ids = select(Notification.id).where(Notification.event_id.in_(ids))
            session.execute(delete(Delivery).where(Delivery.notification_id.in_(notification_ids)))
            session.execute(delete(Notification).where(Notification.event_id.in_(ids)))
            session.execute(delete(Event).where(Event.id.in_(ids)))
    if ids:
        log.info("purge.deleted", events=len(ids), before=cutoff.isoformat())
    return PurgeResult(len(ids))
