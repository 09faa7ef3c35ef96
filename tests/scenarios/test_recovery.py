"""The database is the truth: lost broker messages and dead workers lose nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from sqlalchemy import func, select

from dispatcher import DeliveryStatus, Dispatcher
from dispatcher.db.models import Delivery, Notification
from tests.conftest import Beat, StartWorker, runtime, wait_for


def _rows(d: Dispatcher) -> list[Delivery]:
    with d.store.session() as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


@pytest.mark.redis_broker  # reads or flushes Redis lists
def test_flushing_the_broker_after_notify_loses_nothing(
    dispatcher: Dispatcher,
    start_worker: StartWorker,
    stop_worker: Callable[[], None],
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    stop_worker()
    broker = redis.Redis.from_url(dispatcher.settings.broker_url)
    for i in range(3):
        dispatcher.subscribers.upsert(f"u{i}")
    receipt = dispatcher.notify(
        "ticket_created",
        to=["u0", "u1", "u2"],
        data=dispatcher.catalog.get("ticket_created").example,
    )
    assert broker.llen("dispatcher.high") == 1  # the doorbell rang...
    broker.flushdb()  # ...and the message is gone
    assert broker.llen("dispatcher.high") == 0

    start_worker()
    beat = Beat(dispatcher.settings, tmp_path / "beat.log")
    try:
        wait_for(
            lambda: (
                len(_rows(dispatcher)) == 9 and all(r.status.is_final for r in _rows(dispatcher))
            ),
            timeout=40,
        )
    finally:
        beat.stop()
    assert "Scheduler: Sending due task sweep" in beat.log()
    rows = _rows(dispatcher)
    assert [r.attempts for r in rows] == [1] * 9  # exactly once
    assert {r.status for r in rows if r.channel == "in_app"} == {DeliveryStatus.SENT}
    for i in range(3):
        inbox = dispatcher.inbox(f"u{i}")
        assert [item.type for item in inbox] == ["ticket_created"]
    with dispatcher.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == 3
    assert receipt.recipients == 3


def test_a_delivery_whose_worker_died_is_taken_back_after_its_lease(
    dispatcher: Dispatcher,
) -> None:
    """A claim whose worker vanished (lease expired) is re-rung by the sweep and sent."""
    from datetime import timedelta

    from freezegun import freeze_time

    from dispatcher.clock import utcnow
    from dispatcher.engine.claim import claim

    dispatcher.subscribers.upsert("u1")
    receipt = dispatcher.notify("payout_sent", to="u1", data={"payout_id": 1, "amount": "1"})
    runtime(dispatcher).fanout(receipt.id)
    ids = [r.id for r in _rows(dispatcher)]
    now = utcnow()
    with dispatcher.store.session() as s:  # a worker claims, then is SIGKILLed
        assert claim(s, ids, now=now, lease=timedelta(seconds=300)) == ids
    assert runtime(dispatcher).deliver(ids).claimed == 0  # the lease still holds
    assert runtime(dispatcher).sweep().deliveries == 0
    with freeze_time(now + timedelta(seconds=301)):
        assert runtime(dispatcher).sweep().deliveries == 1
        report = runtime(dispatcher).deliver(ids)
    assert report.counts == {"sent": 1}
    assert _rows(dispatcher)[0].attempts == 2
