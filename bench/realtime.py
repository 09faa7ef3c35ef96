"""Real-time latency: ``notify`` returning → a WebSocket client receiving the notification.

Starts a real Celery worker, a real gateway (``dispatcher gateway``) and a client process
holding ``--clients`` WebSocket connections (one subscriber each), then runs three
phases at ``--rate`` events per second, each event for one random subscriber:

1. **redis** (naive baseline): ``PUBLISH`` on a plain channel → a Redis subscriber in the
   client process. The floor any pub/sub design pays on this machine.
2. **gateway**: ``PUBLISH`` of an in-app message on the subscriber's inbox channel → the
   gateway → the WebSocket client (the gateway hop alone).
3. **notify**: ``Dispatcher.notify`` → outbox row → Celery fan-out → Celery deliver
   (render, store, publish) → the gateway → the WebSocket client (the whole path).

Latency is measured from the producer call returning to the client process reading the
message, both on the system-wide monotonic clock. Prints p50/p95/p99/max, messages lost
(expected minus received), the gateway's peak memory (VmHWM) and each phase's p99 as a
ratio of the baseline's.

    python -m bench.realtime          # 1,000 clients, 200/s, 30 s; SQLite, then PostgreSQL
    python -m bench.realtime --clients 200 --duration 5 --database-url postgresql://...

Redis: ``--redis-url`` carries the broker queues and pub/sub (under a fresh key prefix).
Give it a database that no other dispatcher worker consumes (the queue names are
fixed, so another worker there would take the bench's tasks and vice versa); default
``$DISPATCHER_BENCH_REDIS_URL`` or DB 15. At the end the dispatcher's Celery queues on
that database are purged, so that work a saturated run leaves behind does not land on
the next run; nothing else is deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import both  # noqa: E402  (after the path: run as a file too)

BASELINE_CHANNEL_SUFFIX = ":bench:baseline"
#: Gateway-phase notification ids start here so they never meet real ones.
FAKE_ID_BASE = 10**12
#: Events sent to warm the worker up before the notify phase, with sequence numbers
#: from here (never counted).
WARMUP_EVENTS = 40
WARMUP_SEQ = 10**9
#: The one event sent as soon as the worker and the clients are up (never counted in
#: the phases): how long the first event after a worker starts takes to arrive.
FIRST_SEQ = 2 * 10**9


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rate", type=float, default=200.0, help="events per second")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of the notify phase")
    p.add_argument(
        "--notify-rate",
        type=float,
        default=None,
        help="events per second of the notify phase (default: --rate)",
    )
    p.add_argument(
        "--baseline-duration", type=float, default=10.0, help="seconds of each baseline phase"
    )
    p.add_argument(
        "--database-url",
        default=None,
        help="default: each of --databases in turn (a fresh SQLite file, a fresh "
        "PostgreSQL database)",
    )
    both.add_arguments(p)
    p.add_argument(
        "--redis-url",
        default=os.environ.get("DISPATCHER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"),
    )
    p.add_argument("--concurrency", type=int, default=2, help="worker processes")
    p.add_argument("--pool", default="prefork", help="Celery worker pool (prefork, solo)")
    p.add_argument(
        "--workers", type=int, default=1, help="Celery worker instances (e.g. 2 with --pool solo)"
    )
    p.add_argument("--producers", type=int, default=4, help="threads calling notify")
    p.add_argument(
        "--statements",
        action="store_true",
        help="PostgreSQL: print each statement's calls and time per event",
    )
    p.add_argument("--drain", type=float, default=15.0, help="seconds to wait for stragglers")
    # Internal: the client process.
    p.add_argument("--role", default="main", choices=["main", "clients"], help=argparse.SUPPRESS)
    p.add_argument("--ws-url", help=argparse.SUPPRESS)
    p.add_argument("--secret", help=argparse.SUPPRESS)
    p.add_argument("--prefix", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args()


# -- the client process --------------------------------------------------------------


def run_clients(args: argparse.Namespace) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_clients(args))


async def _clients(args: argparse.Namespace) -> None:
    import jwt
    import redis.asyncio as aioredis
    from websockets.asyncio.client import connect

    received: dict[str, dict[int, float]] = {"redis": {}, "gateway": {}, "notify": {}}
    #: Per notify-phase message: (created_at, the worker's wall clock when fan-out
    #: began, and the client's wall clock on receipt) — to split the latency.
    split: dict[int, tuple[str, float]] = {}
    duplicates = {"gateway": 0, "notify": 0}

    async def hold(index: int, ready: asyncio.Event, counter: list[int]) -> None:
        tok = jwt.encode(
            {"sub": f"s{index}", "exp": int(time.time()) + 3600}, args.secret, algorithm="HS256"
        )
        async with connect(
            f"{args.ws_url}/ws/notifications/{tok}/", ping_interval=None, max_queue=None
        ) as ws:
            await ws.recv()  # the unread count
            counter[0] += 1
            if counter[0] == args.clients:
                ready.set()
            async for raw in ws:
                now = time.monotonic()
                if '"notification"' not in raw[:40]:
                    continue
                n = json.loads(raw)["notification"]
                phase = "notify" if n["type"] == "bench_ping" else "gateway"
                seq = n["data"]["seq"]
                if seq in received[phase]:
                    duplicates[phase] += 1
                else:
                    received[phase][seq] = now
                    if phase == "notify":
                        split[seq] = (n["created_at"], time.time())

    async def baseline(subscribed: asyncio.Event) -> None:
        client = aioredis.Redis.from_url(args.redis_url)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(args.prefix + BASELINE_CHANNEL_SUFFIX)
        subscribed.set()
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None:
                now = time.monotonic()
                received["redis"][int(message["data"])] = now

    ready = asyncio.Event()
    subscribed = asyncio.Event()
    counter = [0]
    tasks = [asyncio.create_task(baseline(subscribed))]
    for start in range(0, args.clients, 100):  # in waves: the accept backlog is finite
        tasks += [
            asyncio.create_task(hold(i, ready, counter))
            for i in range(start, min(start + 100, args.clients))
        ]
        await asyncio.sleep(0.05)
    await asyncio.wait_for(ready.wait(), 120)
    await subscribed.wait()
    # This one process stands in for --clients browsers: a pause of its garbage
    # collector (a full collection of 1,000 sockets' objects took 20-84 ms here) would
    # delay every message it is reading and count as the system's latency. Keep what
    # exists out of collections, and collect nothing until the dump.
    gc.freeze()
    gc.disable()
    print("ready", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    assert line.strip() == "dump", line
    dump = {"received": received, "duplicates": duplicates, "split": split}
    Path(args.out).write_text(json.dumps(dump))
    print("dumped", flush=True)
    for t in tasks:
        t.cancel()


# -- the orchestrator ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int, *, with_children: bool = False) -> float:
    """User + system CPU of ``pid`` (and of its live child processes) so far."""
    tick = os.sysconf("SC_CLK_TCK")

    def one(p: int) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick

    total = one(pid)
    if with_children:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(stat[1]) == pid:
                total += one(int(entry.name))
    return total


def redis_pid() -> int | None:
    out = subprocess.run(["pidof", "redis-server"], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


def paced(
    rate: float,
    duration: float,
    threads: int,
    send: Any,
    stamps: dict[int, float],
    wall: dict[int, float] | None = None,
) -> int:
    """Call ``send(seq)`` ``rate`` times a second for ``duration`` s from ``threads`` threads."""
    total = int(rate * duration)
    # The producer threads share this process with the orchestrator's heap: a full
    # collection (78-119 ms measured) would stop every producer and then release a
    # burst. Collect before, and not during, the phase.
    gc.collect()
    gc.disable()
    start = time.monotonic() + 0.2
    errors: list[BaseException] = []

    def producer(offset: int) -> None:
        try:
            for seq in range(offset, total, threads):
                due = start + seq / rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                send(seq)
                stamps[seq] = time.monotonic()
                if wall is not None:
                    wall[seq] = time.time()
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=producer, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    gc.enable()
    if errors:
        raise errors[0]
    late = time.monotonic() - (start + total / rate)
    if late > 1.0:
        print(f"  (producer fell {late:.1f}s behind the schedule)")
    return total


def summary(
    name: str,
    sent: dict[int, float],
    got: dict[int, float],
    unfinished: AbstractSet[int] = frozenset(),
) -> dict[str, float]:
    """Latency percentiles; ``lost`` counts messages sent and never received, except
    ``unfinished`` ones (a saturated worker had not stored them when the run ended)."""
    lat = sorted((got[s] - t) * 1000 for s, t in sent.items() if s in got)
    lost = sum(1 for s in sent if s not in got and s not in unfinished)
    if not lat:
        return {"n": 0, "lost": lost}

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, round(p / 100 * (len(lat) - 1)))]

    return {
        "n": len(lat),
        "lost": lost,
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
        "max": lat[-1],
        "mean": statistics.fmean(lat),
    }


def print_split(notify_wall: dict[int, float], split: dict[str, list[Any]]) -> None:
    """Where the notify phase's time goes: before the worker began fan-out (publish,
    broker, Celery) and after (fan-out, delivery, pub/sub, gateway, client)."""
    from datetime import datetime

    before: list[float] = []
    after: list[float] = []
    for seq, (created_at, got) in split.items():
        began = datetime.fromisoformat(created_at).timestamp()
        if int(seq) in notify_wall:
            before.append((began - notify_wall[int(seq)]) * 1000)
            after.append((got - began) * 1000)
    for name, values in (("notify→fan-out", before), ("fan-out→client", after)):
        if values:
            values.sort()
            p = [values[min(len(values) - 1, round(q * (len(values) - 1)))] for q in (0.5, 0.99)]
            print(f"  {name:<16} p50 {p[0]:8.2f} ms   p99 {p[1]:8.2f} ms   max {values[-1]:.2f} ms")


def main() -> None:
    args = parse_args()
    if args.notify_rate is None:
        args.notify_rate = args.rate
    if args.role == "clients":
        run_clients(args)
        return
    if args.database_url is None:
        both.run_each("bench.realtime", args)
        return

    import redis

    from bench.pg_server import ServerCounter
    from dispatcher import Dispatcher, Settings
    from dispatcher.db.models import Subscriber
    from dispatcher.names import inbox_channel

    workdir = Path(tempfile.mkdtemp(prefix="dispatcher-bench-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    secret = uuid.uuid4().hex * 2
    settings = Settings.from_env(
        database_url=database_url,
        broker_url=args.redis_url,
        redis_url=args.redis_url,
        redis_prefix=prefix,
        types_modules=["bench.realtime_types"],
        extra_templates_dirs=[ROOT / "bench" / "templates"],
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DISPATCHER_DATABASE_URL": database_url,
        "DISPATCHER_BROKER_URL": args.redis_url,
        "DISPATCHER_REDIS_URL": args.redis_url,
        "DISPATCHER_REDIS_PREFIX": prefix,
        "DISPATCHER_TYPES_MODULES": '["bench.realtime_types"]',
        "DISPATCHER_EXTRA_TEMPLATES_DIRS": json.dumps([str(ROOT / "bench" / "templates")]),
        "DISPATCHER_GATEWAY_JWT_SECRET": secret,
        "DISPATCHER_GATEWAY_MAX_CONNECTIONS_PER_SUBSCRIBER": "5",
        "DISPATCHER_GATEWAY_SOCKET_QUEUE_SIZE": "1024",
    }

    d = Dispatcher(settings)
    d.migrate()
    print(f"database: {d.store.url.render_as_string(hide_password=True)}")
    with d.store.session() as s:
        existing = {x for (x,) in s.query(Subscriber.external_id)}
        s.add_all(
            Subscriber(external_id=f"s{i}", locale="en", timezone="UTC", attributes={})
            for i in range(args.clients)
            if f"s{i}" not in existing
        )

    procs: list[subprocess.Popen[bytes]] = []
    worker_log = (workdir / "worker.log").open("wb")
    workers = []
    for n in range(args.workers):
        command = [
            *(sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool", args.pool),
            *("--concurrency", str(args.concurrency), "--loglevel", "INFO"),
            *("--without-mingle", "--without-gossip", "-n", f"bench{n}-{prefix}@%h"),
        ]
        workers.append(
            subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT
            )
        )
    procs.extend(workers)
    port = free_port()
    gateway_log = (workdir / "gateway.log").open("wb")
    gateway = subprocess.Popen(
        [sys.executable, "-c", "from dispatcher.cli import main; main()", "gateway",
         "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=gateway_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    procs.append(gateway)
    out = workdir / "received.json"
    try:
        import httpx

        def gateway_ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(
            lambda: (workdir / "worker.log").read_bytes().count(b" ready.") >= args.workers,
            60,
            "the workers",
        )
        wait_until(gateway_ready, 30, "the gateway")
        idle_rss = rss_kib(gateway.pid)
        clients = subprocess.Popen(
            [sys.executable, __file__, "--role", "clients", "--ws-url", f"ws://127.0.0.1:{port}",
             "--clients", str(args.clients), "--secret", secret, "--prefix", prefix,
             "--redis-url", args.redis_url, "--out", str(out)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        procs.append(clients)
        assert clients.stdout is not None and clients.stdin is not None
        if clients.stdout.readline().strip() != b"ready":
            raise SystemExit("client process failed")
        connected_rss = rss_kib(gateway.pid)
        print(
            f"{args.clients} clients connected; gateway RSS {idle_rss / 1024:.1f} MiB idle, "
            f"{connected_rss / 1024:.1f} MiB with all sockets open"
        )

        # The first event after the worker started: its processes have taken no work yet.
        first = Dispatcher(settings)
        first.notify("bench_ping", to="s0", data={"seq": FIRST_SEQ})
        first_sent = time.monotonic()
        first.close()
        time.sleep(1.0)

        r = redis.Redis.from_url(args.redis_url)
        rng = random.Random(7)
        count = int(max(args.rate, args.notify_rate) * max(args.duration, args.baseline_duration))
        targets = [rng.randrange(args.clients) for _ in range(count + 1)]
        sent: dict[str, dict[int, float]] = {"redis": {}, "gateway": {}, "notify": {}}

        baseline_channel = prefix + BASELINE_CHANNEL_SUFFIX
        print(f"phase redis:   {args.rate:g}/s for {args.baseline_duration:g}s")
        paced(
            args.rate, args.baseline_duration, 1,
            lambda seq: r.publish(baseline_channel, str(seq)), sent["redis"],
        )  # fmt: skip

        def gateway_hop(seq: int) -> None:
            sub = f"s{targets[seq % len(targets)]}"
            body = {
                "type": "notification",
                "subscriber": sub,
                "notification": {
                    "id": FAKE_ID_BASE + seq, "type": "bench_gateway", "category": "bench",
                    "priority": "high", "title": f"Ping {seq}", "body": "x", "url": None,
                    "data": {"seq": seq}, "created_at": "2026-01-01T00:00:00+00:00",
                    "seen_at": None, "read_at": None, "archived_at": None,
                },
            }  # fmt: skip
            r.publish(inbox_channel(prefix, sub), json.dumps(body))

        print(f"phase gateway: {args.rate:g}/s for {args.baseline_duration:g}s")
        paced(args.rate, args.baseline_duration, 1, gateway_hop, sent["gateway"])

        # One dispatcher per producer thread (thread i sends the events whose seq is i
        # modulo the threads), made and connected before the phase: building four at its
        # start took the CPU from the worker just as the first events arrived.
        producers = [Dispatcher(settings) for _ in range(args.producers)]

        def notify(seq: int) -> None:
            producers[seq % args.producers].notify(
                "bench_ping", to=f"s{targets[seq]}", data={"seq": seq}
            )

        # Warm the worker up first (imports, template compilation, connections), as a
        # worker in production is: its first tasks are not what this measures. The
        # producers' connections (database, latch, broker) are opened here too.
        for i in range(WARMUP_EVENTS):
            producers[i % args.producers].notify(
                "bench_ping", to=f"s{i % args.clients}", data={"seq": WARMUP_SEQ + i}
            )
            time.sleep(0.02)
        time.sleep(1.0)

        print(f"phase notify:  {args.notify_rate:g}/s for {args.duration:g}s through the worker")
        rpid = redis_pid()
        server = ServerCounter(d.store.engine) if d.store.is_postgres else None
        server_before = server.sample() if server else None

        def cpu_now() -> dict[str, float]:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            return {
                "producer": usage.ru_utime + usage.ru_stime,
                "celery master": sum(cpu_seconds(w.pid) for w in workers),
                "worker processes": sum(
                    cpu_seconds(w.pid, with_children=True) - cpu_seconds(w.pid) for w in workers
                ),
                "gateway": cpu_seconds(gateway.pid),
                "clients": cpu_seconds(clients.pid),
                "redis": cpu_seconds(rpid) if rpid else 0.0,
            }

        cpu_before = cpu_now()
        t0 = time.monotonic()
        notify_wall: dict[int, float] = {}
        total = paced(
            args.notify_rate, args.duration, args.producers, notify, sent["notify"], notify_wall
        )
        print(f"  {total} notify calls in {time.monotonic() - t0:.1f}s")
        for producer in producers:
            producer.close()

        from sqlalchemy import func, select

        from dispatcher.db.models import Event, Notification

        def all_in() -> bool:
            with d.store.session() as s:
                n = s.scalar(
                    select(func.count())
                    .select_from(Notification)
                    .where(Notification.inbox_at.is_not(None))
                )
            return int(n or 0) >= total + WARMUP_EVENTS + 1  # and the first event

        try:
            wait_until(all_in, args.drain, "the worker to store every notification")
            took = time.monotonic() - t0
            print(f"  the worker stored all {total} in {took:.1f}s ({total / took:.0f}/s)")
        except SystemExit as exc:
            print(f"  ({exc})")
        # What the worker has stored by now; each of these must reach its client.
        with d.store.session() as s:
            stored = {
                int(payload["seq"])
                for (payload,) in s.execute(
                    select(Event.payload)
                    .join(Notification, Notification.event_id == Event.id)
                    .where(Notification.inbox_at.is_not(None), Event.type == "bench_ping")
                )
            }
        time.sleep(1.0)  # the last publishes cross the gateway
        cpu_after = cpu_now()
        server_after = server.sample() if server else None
        spent = {k: (cpu_after[k] - cpu_before[k]) * 1000 / total for k in cpu_before}
        print(
            "  CPU per event: "
            + ", ".join(f"{k} {v:.2f} ms" for k, v in spent.items())
            + f"; total {sum(spent.values()):.2f} ms"
        )
        if server is not None and server_before is not None and server_after is not None:
            print("  " + server.per_event(server_before, server_after, total))
            if args.statements:
                print("\n".join(server.statement_table(server_before, server_after, total)))
        peak = peak_kib(gateway.pid)
        clients.stdin.write(b"dump\n")
        clients.stdin.flush()
        clients.stdout.readline()
        result = json.loads(out.read_text())
        got = {k: {int(s): t for s, t in v.items()} for k, v in result["received"].items()}

        unfinished = {seq for seq in sent["notify"] if seq not in stored}
        rows = {
            name: summary(name, sent[name], got[name], unfinished if name == "notify" else set())
            for name in sent
        }
        base = rows["redis"].get("p99") or float("nan")
        print()
        print(f"{'phase':<10}{'sent':>7}{'lost':>6}{'p50 ms':>11}{'p95 ms':>11}{'p99 ms':>11}"
              f"{'max ms':>11}{'p99/base':>11}")  # fmt: skip
        for name, row in rows.items():
            if not row.get("n"):
                print(f"{name:<10}{len(sent[name]):>7}{row['lost']:>6}   (nothing received)")
                continue
            print(
                f"{name:<10}{len(sent[name]):>7}{row['lost']:>6}{row['p50']:>11.2f}"
                f"{row['p95']:>11.2f}{row['p99']:>11.2f}{row['max']:>11.2f}"
                f"{row['p99'] / base:>10.1f}x"
            )
        if unfinished:
            print(
                f"  ({len(unfinished)} notify events not yet stored when the run ended: "
                "a backlog, not lost; they are not in 'lost' or the percentiles)"
            )
        print(f"duplicates: {result['duplicates']}")
        first_got = got["notify"].get(FIRST_SEQ)
        if first_got is None:
            print("first event after the worker started: never received")
        else:
            took_ms = (first_got - first_sent) * 1000
            print(f"first event after the worker started: {took_ms:.1f} ms (target 50 ms)")
        print_split(notify_wall, result["split"])
        print(f"gateway peak memory (VmHWM): {peak / 1024:.1f} MiB")
        target = rows["notify"].get("p99")
        verdict = "met" if target is not None and target < 25 else "NOT met"
        print(f"target p99 < 25 ms end to end: {verdict}")
    finally:
        from dispatcher.worker import create_app

        left = create_app(settings).control.purge()
        if left:
            print(f"purged {left} task messages this run left unprocessed")
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        worker_log.close()
        gateway_log.close()
        d.close()
        print(f"logs in {workdir}")


if __name__ == "__main__":
    main()
