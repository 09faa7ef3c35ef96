"""Coalesced fan-out: one draining task fans out every due event of its kind, and
``notify`` rings only when no drain holds the kind's latch."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from dispatcher import Dispatcher, EventStatus, NotificationType, Priority
from dispatcher.db.models import Event, Notification
from dispatcher.engine.doorbell import Latch
from dispatcher.engine.drain import DRAIN_BATCH, drain
from tests.app_types import PayoutSent
from tests.conftest import QUIET_BROKER_URL, StartWorker, make_settings, runtime, wait_for

PAYOUT = {"payout_id": 1, "amount": "10.00"}
QUEUE = "dispatcher.medium"  # payout_sent is of medium priority


@pytest.fixture
def quiet() -> Iterator[redis.Redis]:
    """The broker the in-process dispatcher rings, with its medium queue emptied."""
    client = redis.Redis.from_url(QUIET_BROKER_URL)
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)
    client.close()


def fanout_messages(broker: redis.Redis) -> list[dict[str, Any]]:
    """The drain options of the ``dispatcher.fanout`` messages waiting on QUEUE."""
    found = []
    for raw in broker.lrange(QUEUE, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "dispatcher.fanout":
            args, kwargs, _ = json.loads(_body(message))
            found.append({"event_id": args[0], **kwargs["drain"]})
    return found


def _body(message: dict[str, Any]) -> bytes:
    import base64

    return base64.b64decode(message["body"])


def latched(d: Dispatcher, priority: Priority = Priority.MEDIUM) -> bool:
    key = d._doorbell.latch.key(priority, False)
    return bool(d._doorbell.latch.client.exists(key))


def statuses(d: Dispatcher) -> list[EventStatus]:
    with d.store.session() as s:
        return list(s.scalars(select(Event.status).order_by(Event.id)))


def test_notify_rings_once_while_a_drain_is_on_its_way(
    dispatcher: Dispatcher, quiet: redis.Redis
) -> None:
    dispatcher.subscribers.upsert("ana")
    first = dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    for _ in range(4):
        dispatcher.notify("payout_sent", to="ana", data=PAYOUT)

    assert fanout_messages(quiet) == [
        {"event_id": first.id, "priority": "medium", "bulk": False, "holds_latch": True}
    ]
    assert latched(dispatcher)

    result = runtime(dispatcher).drain("medium", first=first.id)

    assert (result.events, result.notifications, result.handed_on) == (5, 5, False)
    assert statuses(dispatcher) == [EventStatus.FANNED_OUT] * 5
    assert not latched(dispatcher)
    # Released: the next event rings again.
    dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    assert len(fanout_messages(quiet)) == 2


def test_an_event_whose_ring_found_the_latch_held_is_found_by_the_last_look(
    dispatcher: Dispatcher, quiet: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatcher.subscribers.upsert("ana")
    dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    latch = runtime(dispatcher).doorbell.latch  # the drain's own (same keys as notify's)
    release = latch.release
    late: list[int] = []

    def notify_then_release(priority: Priority, bulk: bool) -> None:
        # The worst moment: the drain found nothing left, and this event commits and
        # finds the latch still held (so it does not ring) just before the release.
        if not late:
            late.append(dispatcher.notify("payout_sent", to="ana", data=PAYOUT).id)
        release(priority, bulk)

    monkeypatch.setattr(latch, "release", notify_then_release)
    result = runtime(dispatcher).drain("medium")

    assert len(fanout_messages(quiet)) == 1  # the late event did not ring...
    assert result.events == 2  # ...and was fanned out all the same
    assert statuses(dispatcher) == [EventStatus.FANNED_OUT] * 2


def test_a_drain_past_its_limit_hands_the_latch_to_a_successor(
    dispatcher: Dispatcher, quiet: redis.Redis
) -> None:
    dispatcher.subscribers.upsert("ana")
    for _ in range(5):
        dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    quiet.delete(QUEUE)

    result = drain(
        dispatcher.store,
        dispatcher.catalog,
        dispatcher._doorbell,
        Priority.MEDIUM,
        max_events=2,
    )

    assert (result.events, result.handed_on) == (2, True)
    assert statuses(dispatcher).count(EventStatus.PENDING) == 3
    assert fanout_messages(quiet) == [
        {"event_id": None, "priority": "medium", "bulk": False, "holds_latch": True}
    ]
    assert latched(dispatcher)  # kept for the successor


def test_a_full_batch_rings_one_helper_without_the_latch(
    dispatcher: Dispatcher, quiet: redis.Redis
) -> None:
    dispatcher.subscribers.upsert("ana")
    for _ in range(2 * DRAIN_BATCH + 1):
        dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    quiet.delete(QUEUE)

    result = runtime(dispatcher).drain("medium")

    assert result.events == 2 * DRAIN_BATCH + 1
    assert fanout_messages(quiet) == [
        {"event_id": None, "priority": "medium", "bulk": False, "holds_latch": False}
    ]
    assert not latched(dispatcher)


def test_an_event_that_cannot_be_fanned_out_does_not_hold_up_the_others(
    dispatcher: Dispatcher, quiet: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # The app knows a type that this worker's dispatcher does not (a deploy in which
    # the worker lags behind): its event is the oldest of the kind.
    app = Dispatcher(make_settings(dispatcher.settings.database_url, broker_url=QUIET_BROKER_URL))
    app.register(
        NotificationType(
            name="payout_reversed",
            payload=PayoutSent,
            example=PAYOUT,
            channels=("in_app",),
            category="payouts",
        )
    )
    try:
        app.subscribers.upsert("ana")
        unknown = app.notify("payout_reversed", to="ana", data=PAYOUT)
        known = [app.notify("payout_sent", to="ana", data=PAYOUT) for _ in range(3)]
    finally:
        app.close()

    with caplog.at_level(logging.WARNING, logger="dispatcher"):
        result = runtime(dispatcher).drain("medium", first=unknown.id)

    assert result.events == 3
    assert statuses(dispatcher) == [EventStatus.PENDING] + [EventStatus.FANNED_OUT] * 3
    failures = [r.getMessage() for r in caplog.records if "fanout.failed" in r.getMessage()]
    assert len(failures) == 1
    assert f"event_id={unknown.id}" in failures[0]
    assert "UnknownEventTypeError" in failures[0]
    with dispatcher.store.session() as s:
        notified = set(s.scalars(select(Notification.event_id)))
    assert notified == {k.id for k in known}


def test_concurrent_drains_fan_each_event_out_once(
    dispatcher: Dispatcher, quiet: redis.Redis
) -> None:
    dispatcher.subscribers.upsert("ana")
    total = 6 * DRAIN_BATCH
    for _ in range(total):
        dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    counted: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            counted.append(runtime(dispatcher).drain("medium", holds_latch=False).events)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert sum(counted) == total  # no event counted by two drains
    with dispatcher.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == total


def test_latches_of_different_brokers_do_not_silence_each_other(
    dispatcher: Dispatcher,
) -> None:
    url, prefix = dispatcher.settings.redis_url, dispatcher.settings.redis_prefix
    one = Latch(url, prefix, "redis://127.0.0.1:6379/1")
    other = Latch(url, prefix, "redis://127.0.0.1:6379/2")
    try:
        assert one.take(Priority.HIGH, False)
        assert not one.take(Priority.HIGH, False)
        assert other.take(Priority.HIGH, False)
        assert one.take(Priority.HIGH, True)  # campaigns have a latch of their own
        assert one.take(Priority.LOW, False)
        one.release(Priority.HIGH, False)
        assert one.take(Priority.HIGH, False)
    finally:
        for latch in (one, other):
            for priority in Priority:
                for bulk in (False, True):
                    latch.release(priority, bulk)
            latch.close()


def test_a_latch_without_redis_lets_every_event_ring(caplog: pytest.LogCaptureFixture) -> None:
    latch = Latch("redis://127.0.0.1:1/0", "dtest", "redis://127.0.0.1:1/0", seconds=1)
    try:
        assert latch.take(Priority.HIGH, False)
        assert latch.take(Priority.HIGH, False)
        with caplog.at_level(logging.WARNING, logger="dispatcher"):
            latch.release(Priority.HIGH, False)
        assert any("doorbell.latch_release_failed" in r.getMessage() for r in caplog.records)
    finally:
        latch.close()


def test_a_ring_the_broker_refused_releases_the_latch(dispatcher: Dispatcher) -> None:
    d = Dispatcher(
        make_settings(dispatcher.settings.database_url, broker_url="redis://127.0.0.1:1/0")
    )
    try:
        d.subscribers.upsert("ana")
        d.notify("payout_sent", to="ana", data=PAYOUT)  # the broker is away: not rung
        assert not latched(d)  # so the next event tries again
        assert statuses(d) == [EventStatus.PENDING]  # and the sweep will find this one
    finally:
        d.close()


@pytest.mark.redis_broker  # reads or flushes Redis lists
def test_a_backlog_rung_once_is_delivered_by_the_worker(
    dispatcher: Dispatcher,
    start_worker: StartWorker,
    stop_worker: Callable[[], None],
) -> None:
    stop_worker()
    broker = redis.Redis.from_url(dispatcher.settings.broker_url)
    broker.delete(QUEUE)
    names = [f"u{i}" for i in range(DRAIN_BATCH + 4)]
    for name in names:
        dispatcher.subscribers.upsert(name)
    for name in names:
        dispatcher.notify("payout_sent", to=name, data=PAYOUT)
    assert broker.llen(QUEUE) == 1  # one ring for the whole backlog

    worker = start_worker()
    wait_for(lambda: all(dispatcher.inbox(name) for name in names), timeout=30)
    assert statuses(dispatcher) == [EventStatus.FANNED_OUT] * len(names)
    drained = [
        line
        for line in worker.log().splitlines()
        # Celery logs a task under its display name (``fanout payout_sent → 1``...).
        if " fanout " in line and "] succeeded" in line and "'events'" in line
    ]
    assert sum(int(line.split("'events': ")[1].split(",")[0]) for line in drained) == len(names)
    assert not latched(dispatcher)


def test_a_relay_the_broker_refused_gives_the_latch_back(dispatcher: Dispatcher) -> None:
    d = Dispatcher(
        make_settings(dispatcher.settings.database_url, broker_url="redis://127.0.0.1:1/0")
    )
    try:
        assert d._doorbell.latch.take(Priority.MEDIUM, False)
        assert d._doorbell.relay("medium", bulk=False, holds_latch=True) is False
        assert not latched(d)  # else no event of this kind would ring until it expired
    finally:
        d.close()


def test_a_batch_failure_with_no_event_to_blame_is_raised(
    dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dispatcher.engine.drain as draining

    def broken(*_: Any, **__: Any) -> list[Any]:
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(draining, "fanout_due", broken)
    with pytest.raises(RuntimeError, match="renderer exploded"):
        runtime(dispatcher).drain("medium", holds_latch=False)
