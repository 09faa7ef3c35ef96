"""Coalesced fan-out: a draining task fans out every due event of its kind, and
``notify`` rings only while a slot of the kind's latch is free (one on SQLite, two on
PostgreSQL)."""

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


def latched(d: Dispatcher, priority: Priority = Priority.MEDIUM, *, slot: int = 0) -> bool:
    key = d._doorbell.latch.key(priority, False, slot)
    return bool(d._doorbell.latch.client.exists(key))


def statuses(d: Dispatcher) -> list[EventStatus]:
    with d.store.session() as s:
        return list(s.scalars(select(Event.status).order_by(Event.id)))


def test_notify_rings_once_per_slot_while_drains_are_on_their_way(
    dispatcher: Dispatcher, quiet: redis.Redis
) -> None:
    """One drain at a time on SQLite (one writer), two on PostgreSQL: the first events
    ring one drain per slot, the others none."""
    slots = dispatcher.settings.drain_slots()
    assert slots == (2 if dispatcher.store.is_postgres else 1)
    dispatcher.subscribers.upsert("ana")
    receipts = [dispatcher.notify("payout_sent", to="ana", data=PAYOUT) for _ in range(5)]

    assert sorted(fanout_messages(quiet), key=lambda m: m["slot"]) == [
        {
            "event_id": receipts[slot].id,
            "priority": "medium",
            "bulk": False,
            "holds_latch": True,
            "slot": slot,
        }
        for slot in range(slots)
    ]
    assert all(latched(dispatcher, slot=slot) for slot in range(slots))

    result = runtime(dispatcher).drain("medium", first=receipts[0].id, slot=0)

    assert (result.events, result.notifications, result.handed_on) == (5, 5, False)
    assert statuses(dispatcher) == [EventStatus.FANNED_OUT] * 5
    assert not latched(dispatcher, slot=0)
    # Its slot released: the next event rings again, for that slot.
    dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    assert sorted(m["slot"] for m in fanout_messages(quiet)) == sorted([*range(slots), 0])


def test_an_event_whose_ring_found_the_latch_held_is_found_by_the_last_look(
    dispatcher: Dispatcher, quiet: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    slots = dispatcher.settings.drain_slots()
    dispatcher.subscribers.upsert("ana")
    for _ in range(slots):  # every slot held: the drain below holds the last one
        dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    latch = runtime(dispatcher).doorbell.latch  # the drain's own (same keys as notify's)
    release = latch.release
    late: list[int] = []
    released: list[int] = []

    def notify_then_release(priority: Priority, bulk: bool, slot: int = 0) -> None:
        # The worst moment: the drain found nothing left, and this event commits and
        # finds every slot still held (so it does not ring) just before the release.
        if not late:
            late.append(dispatcher.notify("payout_sent", to="ana", data=PAYOUT).id)
        released.append(slot)
        release(priority, bulk, slot)

    monkeypatch.setattr(latch, "release", notify_then_release)
    result = runtime(dispatcher).drain("medium", slot=slots - 1)

    assert len(fanout_messages(quiet)) == slots  # the late event did not ring...
    assert result.events == slots + 1  # ...and was fanned out all the same
    assert released == [slots - 1]  # the drain gave back its own slot, no other
    assert statuses(dispatcher) == [EventStatus.FANNED_OUT] * (slots + 1)


def test_a_drain_past_its_limit_hands_the_latch_to_a_successor(
    dispatcher: Dispatcher, quiet: redis.Redis
) -> None:
    dispatcher.subscribers.upsert("ana")
    for _ in range(5):
        dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    quiet.delete(QUEUE)

    slot = dispatcher.settings.drain_slots() - 1
    dispatcher._doorbell.latch.take(Priority.MEDIUM, False)  # (the ring took slot 0)
    result = drain(
        dispatcher.store,
        dispatcher.catalog,
        dispatcher._doorbell,
        Priority.MEDIUM,
        max_events=2,
        slot=slot,
    )

    assert (result.events, result.handed_on) == (2, True)
    assert statuses(dispatcher).count(EventStatus.PENDING) == 3
    assert fanout_messages(quiet) == [
        {"event_id": None, "priority": "medium", "bulk": False, "holds_latch": True, "slot": slot}
    ]
    assert latched(dispatcher, slot=slot)  # kept for the successor, which holds the same slot


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
        {"event_id": None, "priority": "medium", "bulk": False, "holds_latch": False, "slot": 0}
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
        assert one.take(Priority.HIGH, False) == 0
        assert one.take(Priority.HIGH, False) is None
        assert other.take(Priority.HIGH, False) == 0
        assert one.take(Priority.HIGH, True) == 0  # campaigns have a latch of their own
        assert one.take(Priority.LOW, False) == 0
        one.release(Priority.HIGH, False)
        assert one.take(Priority.HIGH, False) == 0
    finally:
        for latch in (one, other):
            for priority in Priority:
                for bulk in (False, True):
                    latch.release(priority, bulk)
            latch.close()


def test_a_latch_with_slots_hands_out_each_once_and_takes_back_only_the_one_released(
    dispatcher: Dispatcher,
) -> None:
    url, prefix = dispatcher.settings.redis_url, dispatcher.settings.redis_prefix
    latch = Latch(url, prefix, "redis://127.0.0.1:6379/3", slots=3, seconds=5)
    try:
        taken = [latch.take(Priority.HIGH, False) for _ in range(4)]
        assert taken == [0, 1, 2, None]  # one round trip each, whatever the slots
        latch.release(Priority.HIGH, False, 1)
        assert latch.take(Priority.HIGH, False) == 1
        assert latch.take(Priority.HIGH, False) is None
        # Slot 0 keeps the key it had before slots existed; the others are their own.
        assert latch.key(Priority.HIGH, False, 0) == latch.key(Priority.HIGH, False)
        assert len({latch.key(Priority.HIGH, False, slot) for slot in range(3)}) == 3
        ttl = latch.client.pttl(latch.key(Priority.HIGH, False, 2))
        assert 0 < ttl <= 5000  # a lost drain's slot frees itself
    finally:
        for slot in range(3):
            latch.release(Priority.HIGH, False, slot)
        latch.close()
    with pytest.raises(ValueError, match="at least one slot, not 0"):
        Latch(url, prefix, "redis://127.0.0.1:6379/3", slots=0)


def test_drain_slots_default_to_two_on_postgresql_and_one_on_sqlite() -> None:
    from dispatcher.settings import Settings

    assert Settings(database_url="postgresql+psycopg://u@h/db").drain_slots() == 2
    assert Settings(database_url="postgresql://u@h/db").drain_slots() == 2
    assert Settings(database_url="sqlite:///x.db").drain_slots() == 1
    assert Settings(database_url="sqlite:///x.db", fanout_drains=3).drain_slots() == 3


def test_a_latch_without_redis_lets_every_event_ring(caplog: pytest.LogCaptureFixture) -> None:
    latch = Latch("redis://127.0.0.1:1/0", "dtest", "redis://127.0.0.1:1/0", seconds=1)
    try:
        assert latch.take(Priority.HIGH, False) == 0  # "not latched": ring
        assert latch.take(Priority.HIGH, False) == 0
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
    slots = dispatcher.settings.drain_slots()
    assert broker.llen(QUEUE) == slots  # one ring per slot for the whole backlog

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
    assert not any(latched(dispatcher, slot=slot) for slot in range(slots))


def test_a_relay_the_broker_refused_gives_the_latch_back(dispatcher: Dispatcher) -> None:
    d = Dispatcher(
        make_settings(dispatcher.settings.database_url, broker_url="redis://127.0.0.1:1/0")
    )
    try:
        assert d._doorbell.latch.take(Priority.MEDIUM, False) == 0
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
