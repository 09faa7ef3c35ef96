"""Collapse at release: deferred deliveries of one type fold into the newest.

For types with ``collapse_deferred=True``: when several deliveries of the same type for
the same subscriber and channel were deferred (quiet hours or rate limit) and are due
together, only the newest (highest id) is sent; the others are skipped with reason
``collapsed`` and a detail naming the delivery they were folded into.

"Due together" means: deferred (their recorded reason is ``quiet_hours`` or
``rate_limited``), not final, and ``scheduled_for <= now``, whether this worker claimed
them or another one did, or the sweep has not released them yet. The rule only reads
the database and always picks the same survivor, so duplicated messages and batches
split across workers agree. If the newest is already sent by the time an older one is
looked at, the older one is sent too: a second message, never a lost one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.db.models import Delivery, Notification
from dispatcher.enums import DeliveryStatus, Reason
from dispatcher.policy import Candidate, Decision, Policy

#: Reasons that mean "held back, to be sent later".
DEFERRED = (Reason.QUIET_HOURS.value, Reason.RATE_LIMITED.value)
_OPEN = (DeliveryStatus.PENDING, DeliveryStatus.SCHEDULED, DeliveryStatus.SENDING)


class CollapsePolicy(Policy):
    """Skips all but the newest of simultaneously released deferred deliveries."""

    name = "collapse"

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        relevant = [c for c in candidates if c.type.collapse_deferred]
        if not relevant:
            return {}
        subscribers = {c.recipient.id for c in relevant}
        types = {c.type.name for c in relevant}
        channels = {c.channel for c in relevant}
        rows = session.execute(
            select(Delivery.id, Notification.subscriber_id, Notification.type, Delivery.channel)
            .join(Notification, Notification.id == Delivery.notification_id)
            .where(
                Notification.subscriber_id.in_(subscribers),
                Notification.type.in_(types),
                Delivery.channel.in_(channels),
                Delivery.reason.in_(DEFERRED),
                Delivery.status.in_(_OPEN),
                Delivery.scheduled_for <= now,
            )
        ).all()
        deferred_ids = {row.id for row in rows}
        newest: dict[tuple[int, str, str], int] = {}
        for row in rows:
            key = (row.subscriber_id, row.type, row.channel)
            newest[key] = max(newest.get(key, 0), row.id)
        decisions: dict[int, Decision] = {}
        for c in relevant:
            if c.delivery_id not in deferred_ids:
                continue  # sent on time, or deferred for another reason: not collapsible
            survivor = newest[(c.recipient.id, c.type.name, c.channel)]
            if survivor != c.delivery_id:
                decisions[c.delivery_id] = Decision.skip(
                    Reason.COLLAPSED, f"folded into delivery {survivor}"
                )
        return decisions
