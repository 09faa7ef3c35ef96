"""How long ``notify`` takes while the broker is up, and while it is down.

A private redis-server (broker and latch) is started on a free port, ``notify`` is timed
N times, the server is stopped, and ``notify`` is timed N times again: once with the
doorbell as shipped (short ring timeout, breaker), and once with the naive doorbell
measured in the same run (Celery's default connection handling and no breaker: what
main did before issue 15). Prints p50/p99/max per case, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.doorbell [--calls 500] [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import redis

from dispatcher import Dispatcher, Settings
from dispatcher.engine.broker import celery_app
from dispatcher.engine.doorbell import Breaker, Doorbell, Latch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
            self.process = None


def stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return f"p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  max {ordered[-1] * 1000:8.1f} ms"


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(d: Dispatcher, calls: int, first: int) -> list[float]:
    out = []
    for i in range(first, first + calls):
        began = time.perf_counter()
        d.notify("payout_sent", to="u1", data={"payout_id": i, "amount": "1"})
        out.append(time.perf_counter() - began)
    return out


def rings(d: Dispatcher, calls: int) -> list[float]:
    """The doorbell alone (what ``notify`` adds after its commit)."""
    out = []
    doorbell = d._doorbell
    for _ in range(calls):
        began = time.perf_counter()
        doorbell.fanout(None, "medium")
        out.append(time.perf_counter() - began)
    return out


def naive(d: Dispatcher) -> None:
    """The doorbell as it was: Celery's default reconnects, 2-s latch timeouts, no breaker."""
    s = d.settings
    d._doorbell = Doorbell(
        lambda: celery_app(s), Latch(s.redis_url, s.redis_prefix, s.broker_url), Breaker(0)
    )
    d._outbox.doorbell = d._doorbell


def run(label: str, database_url: str, calls: int, naive_calls: int, folder: Path) -> None:
    for kind in ("dispatcher", "naive"):
        server = Server(folder)
        server.start()
        settings = Settings.from_env(
            database_url=database_url,
            broker_url=server.url,
            redis_url=server.url,
            types_modules=["tests.app_types"],
        )
        d = Dispatcher(settings)
        d.migrate()
        if kind == "naive":
            naive(d)
        d.subscribers.upsert("u1")
        n = calls if kind == "dispatcher" else naive_calls
        timed(d, 20, 10_000_000)  # warm up: connections, statements
        up = timed(d, n, 0)
        ring_up = rings(d, n)
        server.stop()
        began = time.perf_counter()
        down = timed(d, n, n)
        total = time.perf_counter() - began
        ring_down = rings(d, n)
        d.close()
        print(f"{label:<10} {kind:<10} ring alone, up   {stats(ring_up)}")
        print(f"{label:<10} {kind:<10} ring alone, down {stats(ring_down)}")
        print(f"{label:<10} {kind:<10} up   {stats(up)}")
        print(f"{label:<10} {kind:<10} down {stats(down)}   ({n} calls in {total:.2f} s)")
        print(f"{label:<10} {kind:<10} p99 down - p99 up = {(p99(down) - p99(up)) * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--naive-calls", type=int, default=20)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-doorbell-"))
    run("sqlite", f"sqlite:///{folder / 'bench.db'}", args.calls, args.naive_calls, folder)
    name = f"bench_doorbell_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = args.postgres.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        run("postgres", f"{base}/{name}", args.calls, args.naive_calls, folder)
    finally:
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
