"""Fan one event out in-app to N subscribers, end to end through a real Celery worker.

Prints rows/s for dispatcher (bulk fan-out, batched deliveries) and, measured in the same
run on the same database, the naive baseline (one Celery task and one commit per recipient).

    .venv/bin/python -m bench.fanout                      # 10,000 subscribers, SQLite then PG
    .venv/bin/python -m bench.fanout --database-url postgresql://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from sqlalchemy import func, insert, select, text

from bench import both
from bench.pg_server import ServerCounter
from dispatcher import Dispatcher, Settings
from dispatcher.db.models import Base, Delivery, Event, Notification, Subscriber
from dispatcher.enums import DeliveryStatus

ROOT = Path(__file__).resolve().parent.parent


def worker(app: str, env: dict[str, str], log: Path, concurrency: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            app,
            "worker",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"{app}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    time.sleep(3)  # let the pool fork before the clock starts
    if process.poll() is not None:
        raise SystemExit(f"worker {app} exited; see {log}")
    return process


def sent_count(d: Dispatcher) -> int:
    with d.store.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.status == DeliveryStatus.SENT)
            )
            or 0
        )


def wait_until(d: Dispatcher, target: int, timeout: float) -> float:
    start = time.perf_counter()
    while sent_count(d) < target:
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"only {sent_count(d)} of {target} sent after {timeout}s")
        time.sleep(0.05)
    return time.perf_counter()


def reset(d: Dispatcher) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with d.store.engine.begin() as conn:
        for name in tables:
            conn.execute(text(f"DELETE FROM {name}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument(
        "--naive",
        type=int,
        default=None,
        help="recipients for the naive baseline (default: same as --subscribers)",
    )
    parser.add_argument("--database-url", default=None, help="default: each of --databases")
    port = os.environ.get("DISPATCHER_TEST_REDIS_PORT", "6379")
    parser.add_argument("--redis-url", default=f"redis://127.0.0.1:{port}/14")
    parser.add_argument("--concurrency", type=int, default=2)
    both.add_arguments(parser)
    args = parser.parse_args()
    if args.database_url is None:
        both.run_each("bench.fanout", args)
        return
    n, naive_n = args.subscribers, args.naive or args.subscribers

    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    broker = args.redis_url
    redis.Redis.from_url(broker).flushdb()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DISPATCHER_DATABASE_URL": url,
        "DISPATCHER_BROKER_URL": broker,
        "DISPATCHER_REDIS_URL": broker,
        "DISPATCHER_TYPES_MODULES": '["bench.bench_types"]',
        "DISPATCHER_EXTRA_TEMPLATES_DIRS": f'["{ROOT / "bench" / "templates"}"]',
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("DISPATCHER_")})
    d = Dispatcher(Settings.from_env())
    d.migrate()
    reset(d)
    with d.store.session() as s:
        s.execute(
            insert(Subscriber),
            [{"external_id": f"user-{i}", "timezone": "UTC", "attributes": {}} for i in range(n)],
        )
    recipients = [f"user-{i}" for i in range(n)]
    print(f"database: {d.store.dialect}, subscribers: {n}, worker concurrency: {args.concurrency}")

    # dispatcher: one notify, bulk fan-out, batched in-app deliveries
    proc = worker("worker", env, tmp / "worker.log", args.concurrency)
    server = ServerCounter(d.store.engine) if d.store.is_postgres else None
    try:
        server_before = server.sample() if server else None
        start = time.perf_counter()
        d.notify("bench_fanout", to=recipients, data={"name": "bench", "n": 1})
        notify_done = time.perf_counter()
        end = wait_until(d, n, timeout=600)
        server_after = server.sample() if server else None
    finally:
        proc.terminate()
        proc.wait()
    ours = n / (end - start)
    print(
        f"dispatcher: {n} rows in {end - start:.2f}s (notify {notify_done - start:.2f}s) "
        f"= {ours:,.0f} notifications/s end to end"
    )
    if server is not None and server_before is not None and server_after is not None:
        # "event" here is one notification: the fan-out's cost per recipient.
        line = server.per_event(server_before, server_after, n)
        print("            " + line.replace("per event", "per notification"))

    # naive: one task + one commit per recipient, same database, same worker pool size
    reset(d)
    with d.store.session() as s:
        s.execute(
            insert(Subscriber),
            [{"external_id": f"user-{i}", "timezone": "UTC", "attributes": {}} for i in range(n)],
        )
        event = Event(
            type="bench_fanout",
            payload={"name": "bench", "n": 1},
            recipients=[],
            priority="medium",
            send_at=__import__("dispatcher").clock.utcnow(),
        )
        s.add(event)
        s.flush()
        pks = list(
            s.execute(
                select(Subscriber.id, Subscriber.external_id).order_by(Subscriber.id).limit(naive_n)
            )
        )
        event_id = event.id
    from bench.naive import notify_one

    proc = worker("bench.naive", env, tmp / "naive.log", args.concurrency)
    try:
        start = time.perf_counter()
        for pk, external_id in pks:
            notify_one.delay(event_id, pk, external_id, {"name": "bench", "n": 1})
        end = wait_until(d, naive_n, timeout=1200)
    finally:
        proc.terminate()
        proc.wait()
    naive = naive_n / (end - start)
    print(f"naive:      {naive_n} rows in {end - start:.2f}s = {naive:,.0f} notifications/s")
    print(f"ratio:      {ours / naive:.1f}x the naive baseline")
    with d.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Notification)) == naive_n
    d.close()


if __name__ == "__main__":
    main()
