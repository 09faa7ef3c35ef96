"""The soak run of issue 15 (not in CI): WebSocket clients held open while events
stream in at a fixed rate for minutes, with a worker restart half-way; then the
reconciliation and the memory of every process at the start and at the end.

    DISPATCHER_TEST_REDIS_PORT=6393 .venv/bin/python -m bench.load            # 10 min
    .venv/bin/python -m bench.load --minutes 1 --clients 200 --rate 50       # a smoke run

Real processes: a prefork worker of two, one beat, one gateway under uvicorn, Redis,
and a private PostgreSQL cluster (``--backend sqlite`` for a file). Every event goes to
one random subscriber (in-app); each client keeps its socket, and on a drop reconnects
and resumes from the last id it saw. The figures: events sent and the rate achieved,
notifications stored, received by the sockets, lost, duplicates, and the RSS (MiB) of
the worker (main and pool processes together), the gateway and beat at the start and
at the end, with their ratio: a flat run stays near 1.0.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path

import redis
from sqlalchemy import func, select

from dispatcher import Dispatcher
from dispatcher.db.models import Notification, Subscriber
from tests.chaos.private_postgres import PrivatePostgres
from tests.chaos.support import children, seed_subscribers
from tests.chaos.ws_clients import Crowd
from tests.conftest import REDIS_HOST, REDIS_PORT, Beat, Worker, make_settings, wait_for
from tests.gateway_server import GatewayServer, token

#: A Redis database of its own (the chaos tests use 12 to 14).
BROKER = f"redis://{REDIS_HOST}:{REDIS_PORT}/11"


def rss_mib(pid: int, *, with_children: bool = False) -> float:
    pids = [pid, *(children(pid) if with_children else [])]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def memory(worker: Worker, gateway: GatewayServer, beat: Beat) -> dict[str, float]:
    return {
        "worker": rss_mib(worker.process.pid, with_children=True),
        "gateway": rss_mib(gateway.process.pid, with_children=True),
        "beat": rss_mib(beat.process.pid),
    }


class GatewayCurve:
    """The gateway's RSS sampled every ``every`` seconds while the run streams: a curve
    that flattens is warm-up (pools, caches, the allocator's arenas), one that keeps
    climbing is a leak."""

    def __init__(self, gateway: GatewayServer, every: float) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        started = time.monotonic()

        def sample() -> None:
            while not self._stop.wait(every):
                rss = rss_mib(gateway.process.pid, with_children=True)
                self.samples.append((time.monotonic() - started, rss))

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()

    def stop(self) -> str:
        self._stop.set()
        self._thread.join()
        return " ".join(f"{t / 60:.1f}min:{rss:.1f}" for t, rss in self.samples)


def stream(d: Dispatcher, people: list[str], rate: float, seconds: float, sent: list[int]) -> None:
    """Notify one random subscriber ``rate`` times a second for ``seconds``, from a few
    threads (one ``notify`` is a few milliseconds: one thread would fall behind)."""
    threads = 4
    stop_at = time.monotonic() + seconds

    def one(offset: int) -> None:
        interval = threads / rate
        due = time.monotonic() + offset / rate
        n = offset
        while due < stop_at:
            time.sleep(max(0.0, due - time.monotonic()))
            d.notify("payout_sent", to=random.choice(people), data={"payout_id": n, "amount": "1"})
            sent[offset] += 1
            n += threads
            due += interval

    workers = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()


def expected(d: Dispatcher) -> dict[str, set[int]]:
    with d.store.session() as s:
        rows = s.execute(
            select(Subscriber.external_id, Notification.id).join(
                Notification, Notification.subscriber_id == Subscriber.id
            )
        ).all()
    out: dict[str, set[int]] = {}
    for who, nid in rows:
        out.setdefault(who, set()).add(nid)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200, help="events per second")
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-load-"))
    cluster = PrivatePostgres() if args.backend == "postgres" else None
    url = cluster.url if cluster else f"sqlite:///{scratch / 'load.db'}"
    redis.Redis.from_url(BROKER).flushdb()
    d = Dispatcher(make_settings(url, broker_url=BROKER, redis_url=BROKER))
    d.migrate()
    env = {"DISPATCHER_LIVENESS_SECONDS": "3"}
    worker = Worker(d.settings, scratch / "worker.log", env)
    beat = Beat(d.settings, scratch / "beat.log")
    gateway = GatewayServer(
        d.settings,
        scratch / "gateway.log",
        {"DISPATCHER_GATEWAY_MAX_CONNECTIONS_PER_SUBSCRIBER": "50"},
    )
    crowd: Crowd | None = None
    try:
        people = seed_subscribers(d, args.clients, prefix="load")
        crowd = Crowd(
            people, lambda who: f"{gateway.ws_url}/ws/notifications/{token(who, ttl=86400)}/"
        )
        wait_for(lambda: crowd is not None and crowd.connected == args.clients, timeout=300)
        start_rss = memory(worker, gateway, beat)
        seconds = args.minutes * 60
        sent = [0] * 4
        started = time.monotonic()
        streamer = threading.Thread(target=stream, args=(d, people, args.rate, seconds, sent))
        curve = GatewayCurve(gateway, every=max(5.0, seconds / 20))
        streamer.start()
        time.sleep(seconds / 2)
        before_restart = rss_mib(worker.process.pid, with_children=True)
        restart_began = time.monotonic()
        worker.stop()  # a deploy: warm shutdown, then a new worker
        worker = Worker(d.settings, scratch / "worker2.log", env)
        restart = time.monotonic() - restart_began
        time.sleep(min(10.0, seconds / 10))  # warm up, as the first one did
        after_restart = rss_mib(worker.process.pid, with_children=True)
        streamer.join()
        gateway_curve = curve.stop()
        streamed = time.monotonic() - started
        total = sum(sent)
        with d.store.session() as s:
            stored = s.scalar(select(func.count()).select_from(Notification)) or 0
        wait_for(lambda: stored_all(d, total), timeout=600, interval=1)
        want = expected(d)
        wait_for(lambda: crowd.missing(lambda who: want.get(who, set())) == 0, timeout=600)
        settle = time.monotonic() - started - streamed
        end_rss = memory(worker, gateway, beat)
    finally:
        if crowd is not None:
            crowd.stop()
        gateway.stop()
        beat.stop()
        worker.stop()
        d.close()
        if cluster is not None:
            cluster.destroy()
    received = sum(len(c.received) for c in crowd.clients)
    duplicates = sum(c.duplicates for c in crowd.clients)
    lost = sum(len(want.get(c.subscriber, set()) - set(c.received)) for c in crowd.clients)
    print(
        f"\n{args.backend}: {args.clients} sockets, {total} events in {streamed:.0f} s "
        f"({total / streamed:.0f}/s, asked {args.rate:.0f}/s); worker restarted in "
        f"{restart:.1f} s half-way; {stored} stored while streaming"
    )
    print(
        f"notifications {sum(len(v) for v in want.values())}, at the sockets {received}, "
        f"lost {lost}, duplicates {duplicates}, settled {settle:.1f} s after the last event; "
        f"{sum(c.resumes for c in crowd.clients)} resumes"
    )
    rows = [
        ("worker 1", start_rss["worker"], before_restart),
        ("worker 2", after_restart, end_rss["worker"]),
        ("gateway", start_rss["gateway"], end_rss["gateway"]),
        ("beat", start_rss["beat"], end_rss["beat"]),
    ]
    print(f"{'RSS MiB':<10}{'start':>8}{'end':>8}{'end/start':>10}")
    for name, first, last in rows:
        print(f"{name:<10}{first:>8.1f}{last:>8.1f}{last / first:>10.2f}")
    print("(worker: main and pool processes; worker 1 until the restart, worker 2 after)")
    print(f"gateway RSS MiB while streaming: {gateway_curve}")


def stored_all(d: Dispatcher, total: int) -> bool:
    with d.store.session() as s:
        return (s.scalar(select(func.count()).select_from(Notification)) or 0) >= total


if __name__ == "__main__":
    main()
