"""Collapse at release: deferred deliveries of one type fold into one message.

For types with ``collapse_deferred=True``: when several deliveries of the same type for
the same subscriber and channel were deferred (quiet hours or rate limit) and come due
together, one is sent and the others are skipped with reason ``collapsed`` and a detail
naming the delivery they were folded into. For a due, deferred candidate ``c``:

1. if another deferred delivery of the group was already **sent** at or after the
   instant ``c`` came due (``sent_at >= c.scheduled_for``), ``c`` folds into it (the
   newest such);
2. otherwise, among the group's deferred deliveries that are due and still open
   (pending, scheduled, or being sent by any worker), the newest (highest id) is sent
   and ``c`` folds into it unless it is that one.

Both rules read only the database and name the same survivor whichever worker looks,
in whatever order, however often a message is duplicated or a batch split. "Deferred"
means a ``quiet_hours`` or ``rate_limited`` step is recorded for the delivery. If the
survivor then fails (a template error), the folded ones are not resurrected: they
would have failed the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from dispatcher.db.models import Delivery, DeliveryStep, Notification
from dispatcher.enums import DeliveryStatus, Reason
from dispatcher.policies.base import Candidate, Decision, Policy

#: Reasons that mean "held back, to be sent later".
DEFERRED = (Reason.QUIET_HOURS.value, Reason.RATE_LIMITED.value)
_OPEN = (DeliveryStatus.PENDING, DeliveryStatus.SCHEDULED, DeliveryStatus.SENDING)


class CollapsePolicy(Policy):
    """Skips all but the newest of simultaneously released deferred deliveries."""

    name = "collapse"

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        # On a digested channel the digest gathers them instead: folding a window's
        # carrier into another delivery would lose the window's items.
        relevant = [
            c for c in candidates if c.type.collapse_deferred and c.channel not in c.type.digest
        ]
        if not relevant:
            return {}
        due = dict(
            session.execute(
                select(Delivery.id, Delivery.scheduled_for).where(
                    Delivery.id.in_([c.delivery_id for c in relevant]),
                    Delivery.reason.in_(DEFERRED),
                )
            ).all()
        )
        relevant = [c for c in relevant if c.delivery_id in due]
        if not relevant:
            return {}  # sent on time, or held for another reason: nothing to collapse
        earliest = min(due[c.delivery_id] for c in relevant)
        was_deferred = exists().where(
            DeliveryStep.delivery_id == Delivery.id, DeliveryStep.reason.in_(DEFERRED)
        )
        rows = session.execute(
            select(
                Delivery.id,
                Delivery.status,
                Delivery.sent_at,
                Notification.subscriber_id,
                Notification.type,
                Delivery.channel,
            )
            .join(Notification, Notification.id == Delivery.notification_id)
            .where(
                Notification.subscriber_id.in_(sorted({c.recipient.id for c in relevant})),
                Notification.type.in_(sorted({c.type.name for c in relevant})),
                Delivery.channel.in_(sorted({c.channel for c in relevant})),
                or_(
                    and_(
                        Delivery.reason.in_(DEFERRED),
                        Delivery.status.in_(_OPEN),
                        Delivery.scheduled_for <= now,
                    ),
                    and_(
                        Delivery.status == DeliveryStatus.SENT,
                        Delivery.sent_at >= earliest,
                        was_deferred,
                    ),
                ),
            )
        ).all()
        open_newest: dict[tuple[int, str, str], int] = {}
        sent: dict[tuple[int, str, str], list[tuple[int, datetime]]] = {}
        for row in rows:
            key = (row.subscriber_id, row.type, row.channel)
            if row.status is DeliveryStatus.SENT and row.sent_at is not None:
                sent.setdefault(key, []).append((row.id, row.sent_at))
            else:
                open_newest[key] = max(open_newest.get(key, 0), row.id)
        decisions: dict[int, Decision] = {}
        for c in relevant:
            key = (c.recipient.id, c.type.name, c.channel)
            came_due = due[c.delivery_id]
            already = [i for i, at in sent.get(key, []) if at >= came_due and i != c.delivery_id]
            survivor = max(already) if already else open_newest.get(key, c.delivery_id)
            if survivor != c.delivery_id:
                decisions[c.delivery_id] = Decision.skip(
                    Reason.COLLAPSED, f"folded into delivery {survivor}"
                )
        return decisions
