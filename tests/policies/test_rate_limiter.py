"""The Redis rate limiter: atomic across threads and processes, on a real Redis."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import cast

import redis
from sqlalchemy.orm import Session

from dispatcher import Priority, RateLimit, Reason
from dispatcher.policies import RateLimitPolicy
from dispatcher.policies.base import Action, Candidate
from dispatcher.policies.rate_limit import RateLimiter
from dispatcher.subscribers.recipient import Recipient
from tests.conftest import REDIS_URL
from tests.policies.support import admit_in_subprocess
from tests.policy_types import TYPES

LIMITED = next(t for t in TYPES if t.name == "policy_limited")  # 3 per 60 s on recorder
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NO_SESSION = cast(Session, None)  # the rate-limit policy never touches the database


def limiter(prefix: str) -> RateLimiter:
    return RateLimiter(redis.Redis.from_url(REDIS_URL), prefix)


def candidate(
    delivery_id: int, subscriber: int = 1, priority: Priority = Priority.LOW
) -> Candidate:
    return Candidate(
        delivery_id=delivery_id,
        notification_id=delivery_id,
        channel="recorder",
        type=LIMITED,
        priority=priority,
        recipient=Recipient(subscriber, f"u{subscriber}", "en", "UTC"),
        attempt=1,
    )


def test_threads_calling_the_policy_agree_on_the_count(redis_client: redis.Redis) -> None:
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    barrier = threading.Barrier(16)

    def worker(n: int) -> int:
        policy = RateLimitPolicy(limiter(prefix))  # one client per "worker"
        batch = [candidate(n * 100 + k) for k in range(5)]
        barrier.wait()
        decisions = policy.decide(NO_SESSION, batch, NOW)
        deferred = [d for d in decisions.values() if d.action is Action.DEFER]
        assert all(d.reason == Reason.RATE_LIMITED for d in deferred)
        return len(batch) - len(deferred)

    with ThreadPoolExecutor(16) as pool:
        allowed = sum(pool.map(worker, range(16)))
    assert allowed == 3
    assert redis_client.zcard(f"{prefix}:rate:1:recorder:policy_limited") == 3


def test_processes_agree_on_the_count(redis_client: redis.Redis) -> None:
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    jobs = [
        (REDIS_URL, prefix, [p * 100 + k for k in range(10)], NOW.timestamp()) for p in range(8)
    ]
    with ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as pool:
        allowed = sum(pool.map(admit_in_subprocess, jobs))
    assert allowed == 5  # RateLimit(5, 3600) in the helper


def test_window_slides_and_the_same_delivery_counts_once(redis_client: redis.Redis) -> None:
    rl = limiter(f"rl-{uuid.uuid4().hex[:8]}")
    cap = RateLimit(2, 60)
    first = rl.admit(1, "recorder", "t", cap, [1, 2, 3], NOW)
    assert [first[i].allowed for i in (1, 2, 3)] == [True, True, False]
    assert first[3].retry_at == NOW + timedelta(seconds=60)
    # A retry of an admitted delivery (after a crash) is not counted again.
    assert rl.admit(1, "recorder", "t", cap, [2], NOW + timedelta(seconds=5))[2].allowed
    later = NOW + timedelta(seconds=30)
    assert not rl.admit(1, "recorder", "t", cap, [4], later)[4].allowed
    assert rl.admit(1, "recorder", "t", cap, [4], NOW + timedelta(seconds=60))[4].allowed
    # Other subscribers, channels and types have counters of their own.
    assert rl.admit(2, "recorder", "t", cap, [5], later)[5].allowed
    assert rl.admit(1, "email", "t", cap, [6], later)[6].allowed
    assert rl.admit(1, "recorder", "other", cap, [7], later)[7].allowed


def test_urgent_and_unlimited_channels_are_not_counted(redis_client: redis.Redis) -> None:
    prefix = f"rl-{uuid.uuid4().hex[:8]}"
    policy = RateLimitPolicy(limiter(prefix))
    urgent = [candidate(i, priority=Priority.URGENT) for i in range(10)]
    assert policy.decide(NO_SESSION, urgent, NOW) == {}
    in_app = [
        Candidate(i, i, "in_app", LIMITED, Priority.LOW, candidate(i).recipient, 1)
        for i in range(10)
    ]
    assert policy.decide(NO_SESSION, in_app, NOW) == {}
    assert not list(redis_client.scan_iter(f"{prefix}:*"))


def test_unreachable_redis_defers_instead_of_sending_uncounted() -> None:
    dead = RateLimiter(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1), "x")
    decisions = RateLimitPolicy(dead).decide(NO_SESSION, [candidate(1), candidate(2)], NOW)
    assert {d.action for d in decisions.values()} == {Action.DEFER}
    assert all(d.until == NOW + timedelta(minutes=1) for d in decisions.values())
    assert "rate limiter unavailable (ConnectionError)" in (decisions[1].detail or "")
