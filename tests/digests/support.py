"""Helpers of the digest tests: a dispatcher that mails a real SMTP server and knows
the digested ``ticket_updated``, and what to read back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from dispatcher import Dispatcher
from dispatcher.db.models import Delivery, DigestItem, DigestWindow, Notification, Subscriber
from tests.conftest import runtime
from tests.policies.support import at

#: A ticket_updated payload; ``updated_by`` tells the items apart in a digest.
UPDATE = {
    "ticket_id": 7,
    "event_name": "Copa del Rey Final",
    "updated_by": "Luis",
    "changes": [{"field": "seat", "old": "12B", "new": "14C"}],
}


def update(d: Dispatcher, who: str, by: str, when: datetime, **kw: Any) -> int:
    """``ticket_updated`` for ``who`` at ``when``: notify, fan out and deliver here."""
    with at(when):
        receipt = d.notify("ticket_updated", to=who, data={**UPDATE, "updated_by": by}, **kw)
        runtime(d).fanout(receipt.id)
        with d.store.session() as s:
            ids = list(
                s.scalars(
                    select(Delivery.id)
                    .join(Notification, Notification.id == Delivery.notification_id)
                    .where(Notification.event_id == receipt.id)
                )
            )
        runtime(d).deliver(ids)
    return receipt.id


def flush(d: Dispatcher, when: datetime) -> dict[str, int]:
    """What beat's ``dispatcher.flush_digests`` runs, at ``when``."""
    with at(when):
        result = runtime(d).flush_digests()
    return {"due": result.due, "dropped": result.dropped, **result.report.counts}


def by_channel(d: Dispatcher, who: str) -> dict[str, list[Delivery]]:
    stmt = (
        select(Delivery)
        .join(Notification, Notification.id == Delivery.notification_id)
        .join(Subscriber, Subscriber.id == Notification.subscriber_id)
        .where(Subscriber.external_id == who)
        .order_by(Delivery.id)
    )
    out: dict[str, list[Delivery]] = {}
    with d.store.session() as s:
        for row in s.scalars(stmt):
            out.setdefault(row.channel, []).append(row)
    return out


def windows(d: Dispatcher) -> list[DigestWindow]:
    with d.store.session() as s:
        return list(s.scalars(select(DigestWindow).order_by(DigestWindow.id)))


def items(d: Dispatcher, window_id: int) -> list[int]:
    with d.store.session() as s:
        return sorted(
            s.scalars(select(DigestItem.delivery_id).where(DigestItem.window_id == window_id))
        )


def text_of(message: Any) -> str:
    body = message.parse().get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\u202f", " ")
