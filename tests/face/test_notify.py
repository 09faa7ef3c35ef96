"""``notify``: validation, idempotency and the transactional outbox, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.orm import Session

from dispatcher import (
    Dispatcher,
    IdempotencyConflictError,
    PayloadValidationError,
    UnknownEventTypeError,
    UnknownSubscriberError,
    ValidationError,
)
from dispatcher.db.models import Delivery, Event, Notification
from tests.conftest import Worker, runtime, wait_for

TICKET = {
    "ticket_id": 123,
    "event_name": "Final",
    "seller": "Luis",
    "amount": "45.00",
    "currency": "EUR",
}


def count(d: Dispatcher, model: type) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_unknown_type_is_refused_with_the_known_types_and_writes_nothing(
    dispatcher: Dispatcher,
) -> None:
    dispatcher.subscribers.upsert("u1")
    with pytest.raises(UnknownEventTypeError) as info:
        dispatcher.notify("ticket_sold", to=["u1"], data=TICKET)
    assert "unknown notification type 'ticket_sold'" in str(info.value)
    assert "ticket_created" in str(info.value)
    assert count(dispatcher, Event) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**TICKET, "ticket_id": "abc"}, "ticket_id: Input should be a valid integer"),
        ({k: v for k, v in TICKET.items() if k != "seller"}, "seller: Field required"),
        ({**TICKET, "currency": "euro"}, "currency: String should match pattern"),
        ({**TICKET, "amount": "-1"}, "amount: Input should be greater than or equal to 0"),
        ({**TICKET, "surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_bad_payload_names_the_field_and_writes_nothing(
    dispatcher: Dispatcher, data: dict[str, object], message: str
) -> None:
    dispatcher.subscribers.upsert("u1")
    with pytest.raises(PayloadValidationError) as info:
        dispatcher.notify("ticket_created", to=["u1"], data=data)
    assert str(info.value).startswith("invalid payload for 'ticket_created': ")
    assert message in str(info.value)
    assert count(dispatcher, Event) == 0


def test_unknown_recipient_is_refused_and_writes_nothing(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1")
    with pytest.raises(UnknownSubscriberError) as info:
        dispatcher.notify("ticket_created", to=["u1", "ghost"], data=TICKET)
    assert str(info.value) == "unknown subscriber id(s): 'ghost'"
    assert count(dispatcher, Event) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"to": []}, "at least one recipient"),
        ({"to": ["u1", ""]}, r"to\[1\] must be 1 to 255 characters"),
        ({"to": ["u1"], "priority": "asap"}, "unknown priority 'asap'"),
        ({"to": ["u1"], "send_at": datetime(2030, 1, 1)}, "send_at must be timezone-aware"),
        ({"to": ["u1"], "idempotency_key": "x" * 256}, "idempotency_key must be 1 to 255"),
    ],
)
def test_bad_arguments_are_refused(
    dispatcher: Dispatcher, kwargs: dict[str, object], message: str
) -> None:
    dispatcher.subscribers.upsert("u1")
    with pytest.raises(ValidationError, match=message):
        dispatcher.notify("ticket_created", data=TICKET, **kwargs)  # type: ignore[arg-type]
    assert count(dispatcher, Event) == 0


def test_same_idempotency_key_returns_the_same_event(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1")
    first = dispatcher.notify("ticket_created", to="u1", data=TICKET, idempotency_key="t-123")
    again = dispatcher.notify("ticket_created", to="u1", data=TICKET, idempotency_key="t-123")
    assert first.created and not again.created
    assert first.id == again.id
    assert count(dispatcher, Event) == 1


def test_reusing_a_key_for_different_data_is_a_conflict(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1")
    dispatcher.notify("ticket_created", to="u1", data=TICKET, idempotency_key="t-123")
    with pytest.raises(IdempotencyConflictError, match="'t-123' was already used"):
        dispatcher.notify(
            "ticket_created", to="u1", data={**TICKET, "amount": "50.00"}, idempotency_key="t-123"
        )
    assert count(dispatcher, Event) == 1


def test_fanout_twice_yields_one_notification_and_one_delivery_per_channel(
    dispatcher: Dispatcher,
) -> None:
    dispatcher.subscribers.upsert("u1")
    dispatcher.subscribers.upsert("u2")
    receipt = dispatcher.notify("ticket_created", to=["u1", "u2"], data=TICKET)
    first = runtime(dispatcher).fanout(receipt.id)
    second = runtime(dispatcher).fanout(receipt.id)
    assert (first.notifications, first.deliveries, first.done) == (2, 6, True)
    assert second.done is False
    # Even a fan-out of an event reset to pending (a duplicated message racing the first)
    # inserts nothing new, and says so.
    with dispatcher.store.session() as s:
        s.get_one(Event, receipt.id).status = "pending"  # type: ignore[assignment]
    third = runtime(dispatcher).fanout(receipt.id)
    assert (third.notifications, third.deliveries) == (0, 0)
    assert count(dispatcher, Notification) == 2
    assert count(dispatcher, Delivery) == 6


def test_deliver_twice_sends_once(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1")
    receipt = dispatcher.notify("payout_sent", to="u1", data={"payout_id": 1, "amount": "2"})
    runtime(dispatcher).fanout(receipt.id)
    with dispatcher.store.session() as s:
        ids = list(s.scalars(select(Delivery.id)))
    first = runtime(dispatcher).deliver(ids)
    second = runtime(dispatcher).deliver(ids)
    assert (first.claimed, first.counts) == (1, {"sent": 1})
    assert (second.claimed, second.counts) == (0, {})
    with dispatcher.store.session() as s:
        assert s.scalar(select(Delivery.attempts)) == 1


def test_idempotent_end_to_end_through_the_worker(dispatcher: Dispatcher, worker: Worker) -> None:
    dispatcher.subscribers.upsert("u1")
    for _ in range(3):
        dispatcher.notify("ticket_created", to="u1", data=TICKET, idempotency_key="k")
    wait_for(lambda: dispatcher.inbox("u1"))
    # Ring the fan-out and the deliveries again, as a duplicated broker message would.
    with dispatcher.store.session() as s:
        event_id = s.scalar(select(Event.id))
        delivery_ids = list(s.scalars(select(Delivery.id)))
    assert event_id is not None
    dispatcher._doorbell.fanout(event_id, "high")
    dispatcher._doorbell.deliver(delivery_ids, "high")
    wait_for(lambda: all(d.status.is_final for d in _deliveries(dispatcher)))
    assert count(dispatcher, Event) == 1
    assert count(dispatcher, Notification) == 1
    assert count(dispatcher, Delivery) == 3
    assert [d.attempts for d in _deliveries(dispatcher)] == [1, 1, 1]


def _deliveries(d: Dispatcher) -> list[Delivery]:
    with d.store.session() as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


# -- transactional outbox -----------------------------------------------------------

metadata = MetaData()
orders = Table(
    "app_orders", metadata, Column("id", Integer, primary_key=True), Column("note", String(50))
)


@pytest.fixture
def app_table(dispatcher: Dispatcher):  # type: ignore[no-untyped-def]
    metadata.create_all(dispatcher.store.engine)
    yield orders
    # No existence check first: on SQLite a read then a write in one deferred
    # transaction fails at once ("database is locked") if a worker committed in between,
    # while a DROP that comes first waits out the busy timeout like any writer.
    metadata.drop_all(dispatcher.store.engine, checkfirst=False)


def test_outbox_joins_the_callers_transaction_and_rings_after_commit(
    dispatcher: Dispatcher, worker: Worker, app_table: Table
) -> None:
    dispatcher.subscribers.upsert("u1")
    with Session(dispatcher.store.engine) as session, session.begin():
        session.execute(app_table.insert().values(id=1, note="sold"))
        receipt = dispatcher.notify("ticket_created", to="u1", data=TICKET, session=session)
        # Not committed yet: another connection sees neither the order nor the event.
        assert count(dispatcher, Event) == 0
    assert count(dispatcher, Event) == 1
    item = wait_for(lambda: dispatcher.inbox("u1"))[0]
    assert item.data["ticket_id"] == 123
    assert receipt.created


def test_outbox_rollback_sends_nothing(
    dispatcher: Dispatcher, worker: Worker, app_table: Table
) -> None:
    dispatcher.subscribers.upsert("u1")
    with Session(dispatcher.store.engine) as session:
        session.begin()
        session.execute(app_table.insert().values(id=1, note="sold"))
        dispatcher.notify("ticket_created", to="u1", data=TICKET, session=session)
        session.rollback()
    # A later, committed event proves the worker is running and ordering is by id.
    dispatcher.notify("payout_sent", to="u1", data={"payout_id": 5, "amount": "1"})
    wait_for(lambda: dispatcher.inbox("u1"))
    assert [i.type for i in dispatcher.inbox("u1")] == ["payout_sent"]
    assert count(dispatcher, Event) == 1
    with dispatcher.store.session() as s:
        assert s.scalar(select(func.count()).select_from(app_table)) == 0


def test_scheduled_send_waits_for_send_at_and_the_sweep(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1")
    later = datetime.now(UTC) + timedelta(hours=2)
    receipt = dispatcher.notify(
        "payout_sent", to="u1", data={"payout_id": 1, "amount": "2"}, send_at=later
    )
    assert receipt.send_at == later
    assert runtime(dispatcher).fanout(receipt.id).done is False
    assert runtime(dispatcher).sweep().events == 0
    from freezegun import freeze_time

    with freeze_time(later + timedelta(seconds=1)):
        assert runtime(dispatcher).sweep().events == 1
        assert runtime(dispatcher).fanout(receipt.id).done is True


def test_small_events_are_delivered_by_the_fanout_task_itself(dispatcher: Dispatcher) -> None:
    from tests.conftest import make_settings

    d = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            broker_url=dispatcher.settings.broker_url,
            inline_delivery_limit=2,
        )
    )
    try:
        for name in ("a", "b", "c"):
            d.subscribers.upsert(name)
        small = d.notify("payout_sent", to=["a", "b"], data={"payout_id": 1, "amount": "1"})
        runtime(d).fanout(small.id)
        assert {r.status.value for r in _deliveries(d)} == {"sent"}
        big = d.notify("payout_sent", to=["a", "b", "c"], data={"payout_id": 2, "amount": "1"})
        runtime(d).fanout(big.id)  # over the limit: rung for the workers instead
        statuses = [r.status.value for r in _deliveries(d)]
        assert statuses == ["sent", "sent", "pending", "pending", "pending"]
    finally:
        d.close()
