"""Seed events through a real worker on real Redis, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from dispatcher import DeliveryStatus, Dispatcher, Reason
from dispatcher.db.models import Delivery, Notification
from dispatcher.seed_types import SEED_TYPES
from tests.conftest import Worker, wait_for


def _deliveries(d: Dispatcher) -> list[Delivery]:
    with d.store.session() as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


def _all_final(d: Dispatcher, expected: int) -> bool:
    rows = _deliveries(d)
    return len(rows) == expected and all(r.status.is_final for r in rows)


@pytest.mark.parametrize("seed", SEED_TYPES, ids=lambda t: t.name)
def test_each_seed_type_reaches_the_inbox(dispatcher: Dispatcher, worker: Worker, seed) -> None:
    dispatcher.subscribers.upsert(
        "user-42", email="ana@example.com", locale="es", timezone="Europe/Madrid"
    )
    receipt = dispatcher.notify(seed.name, to=["user-42"], data=seed.example)
    assert receipt.created and receipt.recipients == 1

    wait_for(lambda: _all_final(dispatcher, len(seed.channels)))
    inbox = dispatcher.inbox("user-42")
    assert len(inbox) == 1
    item = inbox[0]
    assert item.type == seed.name
    assert item.priority == seed.priority.value
    assert item.title and item.body
    assert item.read_at is None
    assert item.data == seed.validate(seed.example)

    by_channel = {r.channel: r for r in _deliveries(dispatcher)}
    assert by_channel["in_app"].status is DeliveryStatus.SENT
    for name, row in by_channel.items():
        if name != "in_app":  # no provider configured in this test
            assert row.status is DeliveryStatus.SKIPPED
            assert row.reason == Reason.CHANNEL_NOT_CONFIGURED


def test_spanish_subscriber_gets_spanish_and_default_gets_english(
    dispatcher: Dispatcher, worker: Worker
) -> None:
    dispatcher.subscribers.upsert("es-mx", locale="es-MX")
    dispatcher.subscribers.upsert("plain")
    data = dict(dispatcher.catalog.get("ticket_created").example)
    dispatcher.notify("ticket_created", to=["es-mx", "plain"], data=data)
    wait_for(lambda: dispatcher.inbox("es-mx") and dispatcher.inbox("plain"))
    assert dispatcher.inbox("es-mx")[0].title.startswith("Entrada vendida")
    assert dispatcher.inbox("plain")[0].title.startswith("Ticket sold")


def test_app_registered_type_is_delivered_by_the_worker(
    dispatcher: Dispatcher, worker: Worker
) -> None:
    dispatcher.subscribers.upsert("u1")
    dispatcher.notify("payout_sent", to="u1", data={"payout_id": 9, "amount": "12.50"})
    item = wait_for(lambda: dispatcher.inbox("u1"))[0]
    assert (item.title, item.body) == ("Payout 9 sent", "12.50 is on its way.")


def test_inbox_is_newest_first_and_pages(dispatcher: Dispatcher, worker: Worker) -> None:
    dispatcher.subscribers.upsert("u1")
    for i in range(5):
        dispatcher.notify("payout_sent", to="u1", data={"payout_id": i + 1, "amount": "1"})
    wait_for(lambda: len(dispatcher.inbox("u1")) == 5)
    first = dispatcher.inbox("u1", limit=2)
    rest = dispatcher.inbox("u1", limit=10, before_id=first[-1].id)
    ids = [i.id for i in first + rest]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5
    # Two worker processes fan out concurrently, so ids follow fan-out order, not notify order.
    assert sorted(i.data["payout_id"] for i in first + rest) == [1, 2, 3, 4, 5]
    with dispatcher.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 5
