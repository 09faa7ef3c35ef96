"""A campaign to N subscribers, in-app, through a real Celery worker; and, in the same run,
the naive baseline (one Celery task per recipient, on a 10,000 subset).

For each size it prints the wall time from the run's start to every in-app row committed
and every real-time ping published (counted by a Redis subscriber), recipients/s, the
worker's peak memory (VmHWM of its busiest process), and the end-to-end latency (notify
to ping) of urgent events sent every 100 ms while the campaign runs.

    .venv/bin/python -m bench.campaign                       # SQLite, 10,000 and 100,000
    .venv/bin/python -m bench.campaign --database-url postgresql://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import func, insert, select, text

from dispatcher import Dispatcher, Settings
from dispatcher.clock import utcnow
from dispatcher.db.models import Base, Delivery, Event, Notification, Subscriber
from dispatcher.enums import DeliveryStatus

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench-campaign"
WATCHER = "urgent-watcher"


#: ``-O fair``: Celery hands a task only to an idle pool process; by default it may
#: queue an urgent task behind a running chunk in a busy process's pipe.
FAIR = ["-O", "fair"]
#: The queues of the two workers run as docker-compose.yml runs them: urgent and high
#: traffic on a worker of its own, so it never waits for a pool process busy with a
#: chunk (``--shared-worker`` runs one worker on every queue instead).
URGENT_QUEUES = "dispatcher.urgent,dispatcher.high"
BULK_QUEUES = "dispatcher.bulk,dispatcher.maintenance,dispatcher.medium,dispatcher.low"


def worker(
    app: str,
    env: dict[str, str],
    log: Path,
    concurrency: int,
    queues: str | None = None,
    name: str = "w",
) -> subprocess.Popen[bytes]:
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
            *FAIR,
            *(["-Q", queues] if queues else []),
            "-n",
            f"{app}-{name}-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    time.sleep(4)  # let the pool fork before the clock starts
    if process.poll() is not None:
        raise SystemExit(f"worker {app} exited; see {log}")
    return process


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def start_workers(
    env: dict[str, str], n: int, tmp: Path, concurrency: int, shared: bool
) -> list[subprocess.Popen[bytes]]:
    """The bulk worker (every queue if ``shared``), then the urgent one if not."""
    if shared:
        return [worker("worker", env, tmp / f"worker-{n}.log", concurrency)]
    return [
        worker("worker", env, tmp / f"bulk-{n}.log", concurrency, BULK_QUEUES, "bulk"),
        worker("worker", env, tmp / f"urgent-{n}.log", 1, URGENT_QUEUES, "urgent"),
    ]


def pool_of(process: subprocess.Popen[bytes]) -> list[int]:
    """A worker's main process and its pool processes."""
    return [process.pid, *children(process.pid)]


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def reset(d: Dispatcher) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with d.store.engine.begin() as conn:
        if d.store.is_postgres:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


def add_subscribers(d: Dispatcher, n: int, *, email: bool = False) -> None:
    rows = [
        {
            "external_id": f"user-{i}",
            "timezone": "UTC",
            "attributes": {},
            "email": f"user{i}@example.com" if email else None,
        }
        for i in range(n)
    ]
    rows.append(
        {"external_id": WATCHER, "timezone": "UTC", "attributes": {"watcher": True}, "email": None}
    )
    with d.store.session(write=True) as s:
        for start in range(0, len(rows), 10_000):
            s.execute(insert(Subscriber), rows[start : start + 10_000])


def count_pings(redis_url: str, count: Any, ready: Any, stop: Any) -> None:
    """In a process of its own: count the campaign's pings into ``count`` (a shared
    integer). Reading 100,000 messages in the bench's process would hold its GIL and
    delay the urgent watcher's timestamps."""
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(f"{PREFIX}:inbox:*")
    watch = f"{PREFIX}:inbox:{WATCHER}".encode()
    ready.set()
    seen = 0
    while not stop.is_set():
        message = pubsub.get_message(timeout=0.1)
        if message is not None and message["channel"] != watch:
            seen += 1
            if seen % 1000 == 0:
                count.value = seen
        elif message is None:
            count.value = seen
    pubsub.close()
    client.close()


class PingCounter:
    """:func:`count_pings` in a child process."""

    def __init__(self, redis_url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.count = context.Value("q", 0, lock=False)
        self.ready = context.Event()
        self.stop = context.Event()
        self.process = context.Process(
            target=count_pings, args=(redis_url, self.count, self.ready, self.stop), daemon=True
        )

    def start(self) -> None:
        self.process.start()
        self.ready.wait(30)

    @property
    def pings(self) -> int:
        return int(self.count.value)

    def close(self) -> None:
        self.stop.set()
        self.process.join(10)


class Listener(threading.Thread):
    """Counts the pings on a channel pattern, or timestamps urgent ones on one channel.

    Urgent pings have a connection of their own, so that they are never read behind a
    chunk's burst of campaign pings on the same socket.
    """

    def __init__(self, redis_url: str, *, urgent: bool) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(redis_url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.watch = f"{PREFIX}:inbox:{WATCHER}".encode()
        if urgent:
            self.pubsub.subscribe(self.watch)
        else:
            self.pubsub.psubscribe(f"{PREFIX}:inbox:*")
        self.is_urgent = urgent
        self.pings = 0
        self.urgent: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.1)
            if message is None:
                continue
            if self.is_urgent:
                body = json.loads(message["data"])
                self.urgent[int(body["notification"]["data"]["seq"])] = time.perf_counter()
            elif message["channel"] != self.watch:
                self.pings += 1

    def close(self) -> None:
        self.stop.set()
        self.join()
        self.pubsub.close()
        self.client.close()


def in_app_rows(d: Dispatcher, event_id: int) -> int:
    with d.store.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.event_id == event_id, Notification.inbox_at.is_not(None))
            )
            or 0
        )


def wait_until_finished(d: Dispatcher, campaign_id: int) -> float:
    """Seconds from the run's ``started_at`` to its ``finished_at`` (as recorded)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = d.campaigns.get(campaign_id).runs[0]
        if run.finished_at is not None:
            return (run.finished_at - run.started_at).total_seconds()
        time.sleep(0.05)
    return float("nan")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def campaign_run(
    d: Dispatcher, env: dict[str, str], n: int, tmp: Path, concurrency: int, shared: bool
) -> dict[str, Any]:
    reset(d)
    add_subscribers(d, n)
    campaign = d.campaigns.create(
        f"bench {n}",
        type="bench_campaign",
        data={"name": "bench", "n": n},
        audience={"all": True, "exclude": [WATCHER]},
    )
    proc, *rest = start_workers(env, n, tmp, concurrency, shared)
    urgent_proc = rest[0] if rest else None
    listener = PingCounter(d.settings.redis_url)
    watcher = Listener(d.settings.redis_url, urgent=True)
    listener.start()
    watcher.start()
    time.sleep(0.5)
    sent_urgent: dict[int, float] = {}
    done = threading.Event()

    def urgent() -> None:
        seq = 0
        while not done.is_set():
            seq += 1
            sent_urgent[seq] = time.perf_counter()
            d.notify("bench_urgent", to=WATCHER, data={"seq": seq})
            time.sleep(0.1)

    sender = threading.Thread(target=urgent, daemon=True)
    try:
        start = time.perf_counter()
        run = d.campaigns.start(campaign.id)
        sender.start()
        event_id = run.event_id or 0
        deadline = start + 900
        rows = 0
        while True:
            if listener.pings >= n:
                rows = in_app_rows(d, event_id)
                if rows >= n:
                    break
            if time.perf_counter() > deadline:
                raise SystemExit(f"only {listener.pings} pings, {rows} rows after 900 s")
            time.sleep(0.01)
        end = time.perf_counter()
        done.set()
        sender.join()
        time.sleep(0.5)  # the last urgent pings
        peaks = {pid: peak_kib(pid) for pid in pool_of(proc)}
        # The run's own record: its start to the commit of the chunk that found no more
        # (a cross-check of the observer's clock, which also waits for the pings' reader).
        recorded = wait_until_finished(d, campaign.id)
    finally:
        done.set()
        listener.close()
        watcher.close()
        for process in (proc, urgent_proc):
            if process is not None:
                process.terminate()
                process.wait()
    latencies = [
        (watcher.urgent[seq] - at) * 1000
        for seq, at in sent_urgent.items()
        if seq in watcher.urgent
    ]
    return {
        "n": n,
        "seconds": end - start,
        "rate": n / (end - start),
        "peak_kib": max(peaks.values()),
        "urgent": latencies,
        "urgent_sent": len(sent_urgent),
        "recorded": recorded,
    }


def naive_run(d: Dispatcher, env: dict[str, str], n: int, tmp: Path, concurrency: int) -> float:
    reset(d)
    add_subscribers(d, n)
    with d.store.session(write=True) as s:
        event = Event(
            type="bench_campaign",
            payload={"name": "bench", "n": n},
            recipients=[],
            priority="low",
            send_at=utcnow(),
        )
        s.add(event)
        s.flush()
        event_id = event.id
        pks = list(
            s.execute(
                select(Subscriber.id, Subscriber.external_id)
                .where(Subscriber.external_id != WATCHER)
                .order_by(Subscriber.id)
            )
        )
    from bench.naive import notify_one

    proc = worker("bench.naive", env, tmp / "naive.log", concurrency)
    try:
        start = time.perf_counter()
        for pk, external_id in pks:
            notify_one.delay(event_id, pk, external_id, {"name": "bench", "n": n}, "bench_campaign")
        while True:
            with d.store.session() as s:
                sent = s.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.status == DeliveryStatus.SENT)
                )
            if sent >= n:
                break
            if time.perf_counter() - start > 1800:
                raise SystemExit(f"naive: only {sent} of {n} after 1800 s")
            time.sleep(0.05)
        end = time.perf_counter()
    finally:
        proc.terminate()
        proc.wait()
    return n / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated audiences")
    parser.add_argument("--naive", type=int, default=10_000, help="recipients of the baseline")
    parser.add_argument("--database-url", default=None)
    port = os.environ.get("DISPATCHER_TEST_REDIS_PORT", "6379")
    parser.add_argument("--redis-url", default=f"redis://127.0.0.1:{port}/13")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=None, help="default: the setting's")
    parser.add_argument(
        "--no-fair", action="store_true", help="run the worker without -O fair (Celery's default)"
    )
    parser.add_argument(
        "--shared-worker",
        action="store_true",
        help="one worker on every queue (default: urgent and high on a worker of their own)",
    )
    parser.add_argument(
        "--email",
        action="store_true",
        help="the second mode: the campaign in-app and by email to a local SMTP sink",
    )
    args = parser.parse_args()
    if args.no_fair:
        FAIR.clear()
    sizes = [int(x) for x in args.sizes.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="bench-campaign-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    redis.Redis.from_url(args.redis_url).flushdb()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DISPATCHER_DATABASE_URL": url,
        "DISPATCHER_BROKER_URL": args.redis_url,
        "DISPATCHER_REDIS_URL": args.redis_url,
        "DISPATCHER_REDIS_PREFIX": PREFIX,
        "DISPATCHER_TYPES_MODULES": '["bench.bench_types"]',
        "DISPATCHER_EXTRA_TEMPLATES_DIRS": f'["{ROOT / "bench" / "templates"}"]',
        **({"DISPATCHER_CAMPAIGN_CHUNK_SIZE": str(args.chunk_size)} if args.chunk_size else {}),
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("DISPATCHER_")})
    d = Dispatcher(Settings.from_env())
    d.migrate()
    layout = (
        "one worker on every queue"
        if args.shared_worker
        else "urgent/high on a worker of their own"
    )
    print(
        f"database: {d.store.dialect}, worker concurrency: {args.concurrency}, "
        f"chunk: {args.chunk_size or 'default'}, {'-O fair' if FAIR else 'default scheduling'}, "
        f"{layout}, "
        f"load average: {os.getloadavg()[0]:.1f}"
    )
    if args.email:
        from bench import campaign_email

        campaign_email.main(env, sizes, tmp, args.concurrency, args.shared_worker)
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores, shared)")
        d.close()
        return
    results = []
    for n in sizes:
        r = campaign_run(d, env, n, tmp, args.concurrency, args.shared_worker)
        results.append(r)
        lat = r["urgent"]
        urgent = (
            f"urgent p50 {statistics.median(lat):.0f} ms, p99 {pct(lat, 99):.0f} ms "
            f"({len(lat)} of {r['urgent_sent']} sent)"
            if lat
            else "no urgent sample"
        )
        print(
            f"campaign {n:>7,}: {r['seconds']:6.2f} s to every in-app row committed and every "
            f"ping published = {r['rate']:8,.0f} recipients/s; worker peak RSS "
            f"{r['peak_kib'] / 1024:.1f} MiB; {urgent}; the run's own record: "
            f"{r['recorded']:.2f} s from start to finish"
        )
    if len(results) > 1:
        print(
            f"peak RSS {results[-1]['n']:,} / {results[0]['n']:,}: "
            f"{results[-1]['peak_kib'] / results[0]['peak_kib']:.2f}x"
        )
    naive = naive_run(d, env, args.naive, tmp, args.concurrency)
    print(f"naive (one task per recipient, on a {args.naive:,} subset): {naive:,.0f} recipients/s")
    for r in results:
        print(f"ratio at {r['n']:,}: {r['rate'] / naive:.1f}x the naive rate")
    load = os.getloadavg()[0]
    print(f"load average at the end: {load:.1f} (2 cores; other developers' tests included)")
    d.close()


if __name__ == "__main__":
    main()
