"""Small events are delivered by the fan-out itself: stored, claimed, decided, rendered,
stored in the inbox and recorded in one transaction, then announced."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import select

from dispatcher import Dispatcher
from dispatcher.db.models import Delivery, Notification
from dispatcher.names import inbox_channel
from tests.conftest import QUIET_BROKER_URL, make_settings, runtime


@pytest.fixture
def inline(dispatcher: Dispatcher) -> Iterator[Dispatcher]:
    """The test database, with fan-out delivering small events inline (the default)."""
    d = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            inline_delivery_limit=20,
            # Ring a broker no worker listens to: this test runs the fan-out itself.
            broker_url=QUIET_BROKER_URL,
        )
    )
    yield d
    d.close()


def _rows(d: Dispatcher) -> list[tuple[str, str, int, str | None]]:
    with d.store.session() as s:
        return [
            (r.channel, r.status.value, r.attempts, r.reason)
            for r in s.scalars(select(Delivery).order_by(Delivery.id))
        ]


def test_fanout_stores_and_announces_a_small_event_in_one_go(inline: Dispatcher) -> None:
    inline.subscribers.upsert("ana")
    listener = redis.Redis.from_url(inline.settings.redis_url).pubsub()
    listener.subscribe(inbox_channel(inline.settings.redis_prefix, "ana"))
    assert listener.get_message(timeout=2) is not None  # the subscribe confirmation

    receipt = inline.notify("payout_sent", to="ana", data={"payout_id": 7, "amount": "5.00"})
    result = runtime(inline).fanout(receipt.id)

    assert (result.notifications, result.deliveries) == (1, 1)
    assert _rows(inline) == [("in_app", "sent", 1, None)]
    with inline.store.session() as s:
        stored = s.scalars(select(Notification)).one()
    assert stored.title and stored.inbox_at is not None
    message = listener.get_message(timeout=2)
    assert message is not None
    body = json.loads(message["data"])
    assert body["notification"]["id"] == stored.id
    assert body["notification"]["title"] == stored.title
    listener.close()


def test_an_opted_out_in_app_delivery_is_skipped_in_the_same_transaction(
    inline: Dispatcher,
) -> None:
    inline.subscribers.upsert("ana")
    inline.preferences.set("ana", enabled=False, channel="in_app", type="payout_sent")
    receipt = inline.notify("payout_sent", to="ana", data={"payout_id": 7, "amount": "5.00"})
    runtime(inline).fanout(receipt.id)
    assert _rows(inline) == [("in_app", "skipped", 1, "opted_out")]
    with inline.store.session() as s:
        assert s.scalars(select(Notification.inbox_at)).one() is None


def test_a_ping_that_cannot_be_published_still_counts_as_delivered(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: the publish fails, the inbox row stays; clients
    # catch up with ``resume`` when they reconnect.
    d = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            inline_delivery_limit=20,
            broker_url=QUIET_BROKER_URL,
            redis_url="redis://127.0.0.1:1/0",
        )
    )
    try:
        d.subscribers.upsert("ana")
        caplog.set_level(logging.WARNING, logger="dispatcher")
        receipt = d.notify("payout_sent", to="ana", data={"payout_id": 7, "amount": "5.00"})
        runtime(d).fanout(receipt.id)
        assert _rows(d) == [("in_app", "sent", 1, None)]
        assert any(
            r.getMessage().startswith("in_app.publish_failed count=1") for r in caplog.records
        )
    finally:
        d.close()
