"""Fan-out's rows on PostgreSQL: a batch's notifications and deliveries in one statement.

Fan-out inserts the notifications, then a delivery per channel of each. Two statements
are two round trips, and on a busy machine a round trip costs more than the insert:
on PostgreSQL one statement does both (a data-modifying ``WITH``), each row set given as
parallel arrays (``unnest``), so that its text is the same for any batch and stays
prepared. A delivery is described by its notification's (event, subscriber) pair, known
before the notification's id is. SQLite keeps the two inserts
(:func:`dispatcher.db.engine.insert_ignore`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from dispatcher.db.engine import insert_ignore
from dispatcher.db.models import Delivery, Notification, table
from dispatcher.engine.claim import Ticket
from dispatcher.enums import DeliveryStatus, Reason


@dataclass(frozen=True)
class NewNotification:
    event_id: int
    subscriber_id: int
    type: str
    category: str
    priority: str


@dataclass(frozen=True)
class NewDeliveryRow:
    """A delivery of the notification of (``event_id``, ``subscriber_id``)."""

    event_id: int
    subscriber_id: int
    channel: str
    priority: str
    status: str
    attempts: int
    lease_until: datetime | None
    claim_token: str | None
    claimed_by: str | None
    reason: str | None
    detail: str | None


def first_state(
    event_id: int,
    subscriber_id: int,
    channel: str,
    priority: str,
    *,
    by_actor: bool,
    inline: bool,
    lease_until: datetime | None,
    ticket: Ticket | None,
) -> NewDeliveryRow:
    """How a delivery is inserted: skipped (to the event's actor), claimed (inline, under
    ``ticket``), or pending."""
    if by_actor:
        return NewDeliveryRow(
            event_id,
            subscriber_id,
            channel,
            priority,
            DeliveryStatus.SKIPPED.value,
            0,
            None,
            None,
            None,
            Reason.ACTOR.value,
            "caused the event",
        )
    if inline:
        return NewDeliveryRow(
            event_id,
            subscriber_id,
            channel,
            priority,
            DeliveryStatus.SENDING.value,
            1,
            lease_until,
            ticket.token if ticket else None,
            ticket.owner if ticket else None,
            None,
            None,
        )
    return NewDeliveryRow(
        event_id,
        subscriber_id,
        channel,
        priority,
        DeliveryStatus.PENDING.value,
        0,
        None,
        None,
        None,
        None,
        None,
    )


def insert_rows(
    session: Session,
    notifications: Sequence[NewNotification],
    deliveries: Sequence[NewDeliveryRow],
    now: datetime,
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, str]]]:
    """Insert ``notifications`` and ``deliveries`` (skipping any that exist); return
    the notifications inserted, ``(id, event_id, subscriber_id)``, and the deliveries
    inserted, ``(id, notification_id, channel)``."""
    if not notifications:
        return [], []
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        return _insert_at_once(conn, notifications, deliveries, now)
    made_notifications: list[tuple[int, int, int]] = insert_ignore(
        session,
        Notification,
        [
            {
                "event_id": n.event_id,
                "subscriber_id": n.subscriber_id,
                "type": n.type,
                "category": n.category,
                "priority": n.priority,
                "created_at": now,
            }
            for n in notifications
        ],
        returning=(_N.c.id, _N.c.event_id, _N.c.subscriber_id),
    )
    nid_of = {(event_id, sid): nid for nid, event_id, sid in made_notifications}
    made_deliveries: list[tuple[int, int, str]] = insert_ignore(
        session,
        Delivery,
        [
            {
                "notification_id": nid_of[(d.event_id, d.subscriber_id)],
                "channel": d.channel,
                "priority": d.priority,
                "status": d.status,
                "attempts": d.attempts,
                "scheduled_for": now,
                "lease_until": d.lease_until,
                "claim_token": d.claim_token,
                "claimed_by": d.claimed_by,
                "reason": d.reason,
                "detail": d.detail,
                "created_at": now,
                "updated_at": now,
            }
            for d in deliveries
            if (d.event_id, d.subscriber_id) in nid_of
        ],
        returning=(_D.c.id, _D.c.notification_id, _D.c.channel),
    )
    return made_notifications, made_deliveries


_N = table(Notification)
_D = table(Delivery)
_statement: Any = None


def _built(conn: Connection) -> Any:
    """The statement, with the tables' names as this process prefixes them."""
    global _statement
    if _statement is None:
        quote = conn.dialect.identifier_preparer.format_table
        notifications, deliveries = quote(table(Notification)), quote(table(Delivery))
        _statement = text(
            f"""
WITH n AS (
  INSERT INTO {notifications} (event_id, subscriber_id, type, category, priority, created_at)
  SELECT v.event_id, v.subscriber_id, v.type, v.category, v.priority, :now
  FROM unnest(CAST(:n_event AS bigint[]), CAST(:n_subscriber AS bigint[]),
              CAST(:n_type AS varchar[]), CAST(:n_category AS varchar[]),
              CAST(:n_priority AS varchar[]))
       AS v(event_id, subscriber_id, type, category, priority)
  ON CONFLICT DO NOTHING
  RETURNING id, event_id, subscriber_id
), d AS (
  INSERT INTO {deliveries} (notification_id, channel, priority, status, attempts,
                            scheduled_for, lease_until, claim_token, claimed_by, reason,
                            detail, created_at, updated_at)
  SELECT n.id, v.channel, v.priority, v.status, v.attempts, :now, v.lease_until,
         v.claim_token, v.claimed_by, v.reason, v.detail, :now, :now
  FROM n JOIN unnest(CAST(:d_event AS bigint[]), CAST(:d_subscriber AS bigint[]),
                     CAST(:d_channel AS varchar[]), CAST(:d_priority AS varchar[]),
                     CAST(:d_status AS varchar[]), CAST(:d_attempts AS integer[]),
                     CAST(:d_lease AS timestamptz[]), CAST(:d_token AS varchar[]),
                     CAST(:d_owner AS varchar[]), CAST(:d_reason AS varchar[]),
                     CAST(:d_detail AS text[]))
       AS v(event_id, subscriber_id, channel, priority, status, attempts, lease_until,
            claim_token, claimed_by, reason, detail)
    ON v.event_id = n.event_id AND v.subscriber_id = n.subscriber_id
  ON CONFLICT DO NOTHING
  RETURNING id, notification_id, channel
)
SELECT n.id, n.event_id, n.subscriber_id, d.id AS delivery_id, d.channel
FROM n LEFT JOIN d ON d.notification_id = n.id
"""
        )
    return _statement


def _insert_at_once(
    conn: Connection,
    notifications: Sequence[NewNotification],
    deliveries: Sequence[NewDeliveryRow],
    now: datetime,
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, str]]]:
    params = {
        "now": now,
        "n_event": [n.event_id for n in notifications],
        "n_subscriber": [n.subscriber_id for n in notifications],
        "n_type": [n.type for n in notifications],
        "n_category": [n.category for n in notifications],
        "n_priority": [n.priority for n in notifications],
        "d_event": [d.event_id for d in deliveries],
        "d_subscriber": [d.subscriber_id for d in deliveries],
        "d_channel": [d.channel for d in deliveries],
        "d_priority": [d.priority for d in deliveries],
        "d_status": [d.status for d in deliveries],
        "d_attempts": [d.attempts for d in deliveries],
        "d_lease": [d.lease_until for d in deliveries],
        "d_token": [d.claim_token for d in deliveries],
        "d_owner": [d.claimed_by for d in deliveries],
        "d_reason": [d.reason for d in deliveries],
        "d_detail": [d.detail for d in deliveries],
    }
    inserted: dict[int, tuple[int, int, int]] = {}
    made: list[tuple[int, int, str]] = []
    for nid, event_id, subscriber_id, delivery_id, channel in conn.execute(_built(conn), params):
        inserted[nid] = (nid, event_id, subscriber_id)
        if delivery_id is not None:
            made.append((delivery_id, nid, channel))
    return list(inserted.values()), made
