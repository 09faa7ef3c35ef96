"""How fast the send-time policy chain decides a batch, against a naive per-delivery run.

Builds N subscribers (preference rules, quiet-hours windows in several zones) in a
scratch SQLite database (or, with ``--postgres``, a scratch PostgreSQL database created
next to the admin URL and dropped afterwards) and Redis (``--redis-url``, default DB 4,
a throw-away key prefix), then times :class:`PolicyChain.decide` for one batch of N
``user_activity`` web-push candidates (all four policies apply: preference, quiet hours,
collapse, rate limit) against the naive baseline: the same chain called once per
delivery, as a non-batching implementation would. Prints both and the ratio.

Subscribers share four zones and one set of quiet-hours windows (the common case of a
default schedule), which the quiet-hours policy computes once per (zone, windows).

    python -m bench.policies [--n 500] [--repeat 5] [--postgres postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import redis

from dispatcher import Dispatcher, Priority, Settings
from dispatcher.db.models import Subscriber
from dispatcher.policies import (
    CollapsePolicy,
    Policy,
    PreferencePolicy,
    QuietHoursPolicy,
    RateLimitPolicy,
)
from dispatcher.policies.base import Candidate, PolicyChain
from dispatcher.policies.rate_limit import RateLimiter
from dispatcher.subscribers.recipient import Recipient

ZONES = ["Europe/Madrid", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]


def _policies(limiter: RateLimiter) -> list[Policy]:
    """The default chain, with a rate limiter of the bench's own key prefix."""
    return [PreferencePolicy(), QuietHoursPolicy(), CollapsePolicy(), RateLimitPolicy(limiter)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", metavar="ADMIN_URL", default=None)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            with scratch_postgres(args.postgres) as url:
                bench(url, args)
        else:
            bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args)


def bench(url: str, args: argparse.Namespace) -> None:
    d = Dispatcher(Settings.from_env(database_url=url, redis_url=args.redis_url))
    try:
        d.migrate()
        run(d, args.n, args.repeat, args.redis_url)
    finally:
        d.close()


@contextmanager
def scratch_postgres(admin_url: str) -> Iterator[str]:
    """A new, empty database beside ``admin_url``; dropped on exit."""
    import psycopg

    name = f"dispatcher_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            yield f"{base}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(d: Dispatcher, n: int, repeat: int, redis_url: str) -> None:
    activity = d.catalog.get("user_activity")
    run_id = uuid.uuid4().hex[:8]
    for i in range(n):
        sid = f"bench-{run_id}-{i}"
        d.subscribers.upsert(sid, timezone=ZONES[i % len(ZONES)])
        if i % 3 == 0:
            d.preferences.set(sid, category="activity", channel="web_push", enabled=False)
        d.preferences.set(sid, type="ticket_created", channel="email", enabled=False)
        d.quiet_hours.set(sid, [("22:00", "07:00", "weekdays"), ("13:00", "14:00")])
    with d.store.session() as s:
        pks = dict(
            s.query(Subscriber.external_id, Subscriber.id).filter(
                Subscriber.external_id.like(f"bench-{run_id}-%")
            )
        )
    candidates = [
        Candidate(
            delivery_id=10_000_000 + i,
            notification_id=10_000_000 + i,
            channel="web_push",
            type=activity,
            priority=Priority.LOW,
            recipient=Recipient(pks[f"bench-{run_id}-{i}"], f"s{i}", "en", ZONES[i % 4]),
            attempt=1,
        )
        for i in range(n)
    ]
    client = redis.Redis.from_url(redis_url)
    now = datetime(2026, 11, 27, 12, 30, tzinfo=UTC)

    def chain(tag: str) -> PolicyChain:
        return PolicyChain(_policies(RateLimiter(client, f"bench-{run_id}-{tag}")))

    def batched(rep: int) -> float:
        c = chain(f"b{rep}")
        with d.store.session() as session:
            started = time.perf_counter()
            c.decide(session, candidates, now)
            return time.perf_counter() - started

    def naive(rep: int) -> float:
        c = chain(f"n{rep}")
        with d.store.session() as session:
            started = time.perf_counter()
            for one in candidates:
                c.decide(session, [one], now)
            return time.perf_counter() - started

    batched(-1)
    naive(-1)  # warm caches and connections
    fast = min(batched(r) for r in range(repeat))
    slow = min(naive(r) for r in range(repeat))
    for key in client.scan_iter(f"bench-{run_id}-*"):
        client.delete(key)
    print(f"backend {d.store.dialect}, {n} deliveries, best of {repeat}")
    print(f"  batched chain : {fast * 1000:8.1f} ms  ({n / fast:10.0f} decisions/s)")
    print(f"  naive per-row : {slow * 1000:8.1f} ms  ({n / slow:10.0f} decisions/s)")
    print(f"  speed-up      : {slow / fast:8.1f}x")


if __name__ == "__main__":
    main()
