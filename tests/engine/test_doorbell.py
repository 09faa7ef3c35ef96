"""The doorbell never blocks the caller: with the broker down, ``notify`` stores the
event and returns within milliseconds, logs once that it skips rings and once that it
rings again (a private redis-server, stopped and restarted)."""

from __future__ import annotations

import logging
import statistics
import time

import pytest
import redis
from sqlalchemy import func, select

from dispatcher import Dispatcher
from dispatcher.db.models import Event
from dispatcher.engine.doorbell import Breaker
from tests.conftest import _truncate, make_settings
from tests.redis_server import PrivateRedis, private_redis_fixture  # noqa: F401 - fixture


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def assert_never_waited(up: list[float], down: list[float], ring_timeout: float) -> None:
    """With the broker down, ``notify`` costs what it costs with the broker up.

    Load-proof forms of "p99 within 20 ms" (``bench.doorbell`` prints the p99s on a quiet
    machine): the typical call costs the same (within 20 ms), and after the first failed
    ring no call waits on the broker (a wait is at least one ring timeout; the breaker
    skips instead).
    """
    assert statistics.median(down) <= statistics.median(up) + 0.020, (up, down)
    waited = [t for t in down[1:] if t >= ring_timeout]
    assert not waited, f"calls that waited on the broker: {waited}"


def _timed_notifies(d: Dispatcher, count: int, start: int) -> list[float]:
    times = []
    for i in range(start, start + count):
        began = time.perf_counter()
        d.notify("payout_sent", to="u1", data={"payout_id": i, "amount": "1"})
        times.append(time.perf_counter() - began)
    return times


def test_notify_does_not_wait_for_a_broker_that_is_down(
    database_url: str, private_redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dispatcher")
    d = Dispatcher(
        make_settings(
            database_url,
            broker_url=private_redis.url,
            redis_url=private_redis.url,
            ring_pause_seconds=1.0,
        )
    )
    _truncate(d)
    try:
        d.subscribers.upsert("u1")
        up = _timed_notifies(d, 100, 0)
        private_redis.stop()
        down = _timed_notifies(d, 200, 100)
        print(f"\nnotify p99: broker up {p99(up) * 1000:.1f} ms, down {p99(down) * 1000:.1f} ms")
        assert_never_waited(up, down, d.settings.ring_timeout_seconds)
        with d.store.session() as s:  # every event stored; the sweep rings them later
            assert s.scalar(select(func.count()).select_from(Event)) == 300
        messages = [r.getMessage() for r in caplog.records]
        assert sum(m.startswith("doorbell.skipping") for m in messages) == 1
        assert not any(m.startswith("doorbell.resumed") for m in messages)

        private_redis.start()
        time.sleep(1.1)  # the pause runs out: the next ring tries the broker again
        _timed_notifies(d, 1, 300)
        messages = [r.getMessage() for r in caplog.records]
        resumed = [m for m in messages if m.startswith("doorbell.resumed")]
        assert len(resumed) == 1
        assert "skipped=" in resumed[0]
        broker = redis.Redis.from_url(private_redis.url)
        assert broker.llen("dispatcher.medium") + broker.llen("dispatcher.high") >= 1
        broker.close()
    finally:
        d.close()


def test_the_breaker_pauses_after_a_failure_and_logs_each_change_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dispatcher")
    now = [100.0]
    breaker = Breaker(5.0, clock=lambda: now[0])
    assert breaker.allows()
    breaker.failed("OperationalError")
    assert not breaker.allows()
    now[0] += 4.9
    assert not breaker.allows()
    now[0] += 0.2
    assert breaker.allows()  # one try after the pause
    breaker.failed("OperationalError")  # still down: pause again, no second log line
    assert not breaker.allows()
    now[0] += 5.1
    assert breaker.allows()
    breaker.succeeded()
    breaker.succeeded()
    messages = [r.getMessage() for r in caplog.records]
    assert [m.split()[0] for m in messages] == ["doorbell.skipping", "doorbell.resumed"]
    assert "skipped=3" in messages[1]
