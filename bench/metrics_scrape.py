"""What one ``/metrics`` scrape and one engagement report cost with many delivery rows.

Fills a scratch SQLite file and a scratch PostgreSQL database with N deliveries (one
subscriber, N events and notifications over three types, three channels and a week of
days, a mix of statuses and reasons, sent ones with a latency), then times:

* the scrape: :class:`~dispatcher.engine.metrics.DatabaseCollector` rendered by
  ``prometheus_client.generate_latest`` (the database's ``GROUP BY`` queries and the
  broker's queue lengths), against a naive baseline measured in the same run: load
  every delivery row with its type and event time into Python and count there;
* ``Dispatcher.analytics.report()`` (engagement per type, channel and day, with
  percentiles).

    python -m bench.metrics_scrape [--n 100000] [--repeat 5] [--redis-url redis://127.0.0.1:6379/4]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import insert, select

from dispatcher import Dispatcher, Settings
from dispatcher.clock import utcnow
from dispatcher.db.models import Delivery, Event, Notification, Subscriber
from dispatcher.enums import DeliveryStatus, EventStatus, Priority

TYPES = ("ticket_created", "payout_sent", "user_activity")
CHANNELS = ("in_app", "email", "web_push")
OUTCOMES = (
    (DeliveryStatus.SENT, None),
    (DeliveryStatus.SENT, None),
    (DeliveryStatus.SENT, None),
    (DeliveryStatus.SKIPPED, "opted_out"),
    (DeliveryStatus.FAILED, "rejected"),
    (DeliveryStatus.SCHEDULED, "quiet_hours"),
)


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


def fill(d: Dispatcher, n: int) -> None:
    now = utcnow()
    with d.store.session(write=True) as s:
        sub = s.execute(
            insert(Subscriber).values(external_id="bench").returning(Subscriber.id)
        ).scalar_one()
        for start in range(0, n, 10_000):
            ids = range(start + 1, min(n, start + 10_000) + 1)
            created = {i: now - timedelta(minutes=(i * 7) % (7 * 24 * 60)) for i in ids}
            s.execute(
                insert(Event),
                [
                    {
                        "id": i,
                        "type": TYPES[i % 3],
                        "payload": {},
                        "recipients": [],
                        "priority": Priority.MEDIUM,
                        "send_at": created[i],
                        "status": EventStatus.FANNED_OUT,
                        "created_at": created[i],
                    }
                    for i in ids
                ],
            )
            s.execute(
                insert(Notification),
                [
                    {
                        "id": i,
                        "event_id": i,
                        "subscriber_id": sub,
                        "type": TYPES[i % 3],
                        "category": "bench",
                        "priority": Priority.MEDIUM,
                        "created_at": created[i],
                    }
                    for i in ids
                ],
            )
            rows = []
            for i in ids:
                status, reason = OUTCOMES[i % len(OUTCOMES)]
                sent = status is DeliveryStatus.SENT
                rows.append(
                    {
                        "id": i,
                        "notification_id": i,
                        "channel": CHANNELS[(i // 3) % 3],
                        "priority": Priority.MEDIUM,
                        "status": status,
                        "reason": reason,
                        "attempts": 1,
                        "scheduled_for": created[i],
                        "created_at": created[i],
                        "updated_at": created[i],
                        "sent_at": created[i] + timedelta(seconds=i % 17) if sent else None,
                    }
                )
            s.execute(insert(Delivery), rows)
    if d.store.is_postgres:
        with d.store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")


def naive(d: Dispatcher) -> None:
    """Every row into Python, counted there."""
    counts: Counter[tuple[str, str, str, str | None]] = Counter()
    with d.store.session() as s:
        for channel, type_name, status, reason, sent_at, created in s.execute(
            select(
                Delivery.channel,
                Notification.type,
                Delivery.status,
                Delivery.reason,
                Delivery.sent_at,
                Event.created_at,
            )
            .join(Notification, Notification.id == Delivery.notification_id)
            .join(Event, Event.id == Notification.event_id)
        ):
            counts[(channel, type_name, status, reason)] += 1
            if sent_at is not None:
                counts[
                    (channel, "latency", str(int((sent_at - created).total_seconds())), None)
                ] += 1


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm caches and pools
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def measure(label: str, url: str, n: int, repeat: int, redis_url: str) -> None:
    d = Dispatcher(Settings.from_env(database_url=url, broker_url=redis_url, redis_url=redis_url))
    try:
        d.migrate()
        started = time.perf_counter()
        fill(d, n)
        filled = time.perf_counter() - started
        registry = CollectorRegistry(auto_describe=False)
        registry.register(d.metrics_collector())
        size = len(generate_latest(registry))
        scrape = timed(lambda: generate_latest(registry), repeat)
        baseline = timed(lambda: naive(d), repeat)
        report = timed(lambda: d.analytics.report(), repeat)
        day = timed(lambda: d.analytics.report(since="1d"), repeat)
        print(
            f"{label:10} {n:>7} deliveries (filled in {filled:.1f} s): "
            f"scrape {scrape * 1000:7.1f} ms ({size} bytes) | "
            f"naive row-by-row count {baseline * 1000:7.1f} ms (x{baseline / scrape:.1f} slower) | "
            f"analytics.report() {report * 1000:7.1f} ms, since=1d {day * 1000:6.1f} ms"
        )
    finally:
        d.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"median of {args.repeat} runs, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        measure("SQLite", url, args.n, args.repeat, args.redis_url)
    with scratch_postgres(args.postgres) as url:
        measure("PostgreSQL", url, args.n, args.repeat, args.redis_url)


if __name__ == "__main__":
    main()
