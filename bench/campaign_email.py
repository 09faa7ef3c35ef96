"""``python -m bench.campaign --email``: the campaign in-app and by email to a local SMTP
sink, through the same two workers; prints emails/s (start of the run to the last email
accepted by the sink) against the email channel's own rate measured by ``bench.email``'s
code on the same sink in the same run.

The email reads each recipient's own links (unsubscribe, preferences), so it is rendered
per recipient, as ``bench.email`` renders every message.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench import campaign as bench
from bench.email import bench_channel, free_port
from bench.pg_server import ServerCounter, ServerSample
from dispatcher import Dispatcher, Settings
from dispatcher.db.models import Delivery
from dispatcher.enums import DeliveryStatus
from dispatcher.settings import SmtpSettings


class Sink:
    """``bench.email``'s aiosmtpd sink in a process of its own, asked for its count."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.email", "--sink", str(self.port)],
            cwd=bench.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit("the SMTP sink did not start")

    def count(self) -> int:
        return int(self._ask("count"))

    def cpu(self) -> float:
        """The sink's CPU seconds so far."""
        return float(self._ask("cpu"))

    def _ask(self, command: str) -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.process.stdout.readline()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        self.process.wait(30)


def smtp_env(port: int) -> dict[str, str]:
    return {
        "DISPATCHER_SMTP_HOST": "127.0.0.1",
        "DISPATCHER_SMTP_PORT": str(port),
        "DISPATCHER_SMTP_SECURITY": "none",
        "DISPATCHER_PUBLIC_URL": "https://app.example.com",
    }


def failures(d: Dispatcher) -> tuple[int, str] | None:
    """How many deliveries failed, and one's reason and detail (None when none did)."""
    with d.store.session() as s:
        rows = s.execute(
            select(func.count(), func.max(Delivery.reason), func.max(Delivery.detail)).where(
                Delivery.status == DeliveryStatus.FAILED
            )
        ).one()
    return (rows[0], f"{rows[1]}: {rows[2]}") if rows[0] else None


def email_run(
    env: dict[str, str], n: int, tmp: Path, concurrency: int, shared: bool, sink: Sink
) -> dict[str, Any]:
    """One campaign to ``n`` subscribers in-app and by email; seconds until the sink has
    accepted all ``n`` emails."""
    d = Dispatcher(Settings.from_env())
    bench.reset(d)
    bench.add_subscribers(d, n, email=True)
    campaign = d.campaigns.create(
        f"bench email {n}",
        type="bench_campaign_email",
        data={"name": "bench", "n": n},
        audience={"all": True, "exclude": [bench.WATCHER]},
    )
    workers = bench.start_workers(env, n, tmp, concurrency, shared)
    server = ServerCounter(d.store.engine) if d.store.is_postgres else None
    before = sink.count()
    try:
        cpu_before = (workers_cpu(workers), sink.cpu(), server.sample() if server else None)
        start = time.perf_counter()
        d.campaigns.start(campaign.id)
        deadline = start + 1800
        checked = start
        while (received := sink.count() - before) < n:
            if time.perf_counter() > deadline:
                raise SystemExit(f"only {received} of {n} emails after 1800 s")
            if time.perf_counter() - checked > 2:
                checked = time.perf_counter()
                failed = failures(d)
                if failed:
                    raise SystemExit(f"{failed[0]} email deliveries failed: {failed[1]}")
            time.sleep(0.02)
        end = time.perf_counter()
        cpu_after = (workers_cpu(workers), sink.cpu(), server.sample() if server else None)
        extra = 0.0
        time.sleep(1.0)  # any duplicate would arrive now
        extra = sink.count() - before - n
        peak = max(bench.peak_kib(pid) for pid in bench.pool_of(workers[0]))
    finally:
        for process in workers:
            process.terminate()
            process.wait()
        d.close()
    cpu = {
        "workers": (cpu_after[0] - cpu_before[0]) / n,
        "sink": (cpu_after[1] - cpu_before[1]) / n,
    }
    if cpu_before[2] is not None and cpu_after[2] is not None:
        cpu["server"] = server_cpu(cpu_before[2], cpu_after[2]) / n
    return {
        "n": n,
        "seconds": end - start,
        "rate": n / (end - start),
        "extra": extra,
        "peak": peak,
        "cpu": cpu,
    }


def workers_cpu(workers: list[subprocess.Popen[bytes]]) -> float:
    """CPU seconds so far of the workers' main and pool processes."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for process in workers:
        for pid in bench.pool_of(process):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def server_cpu(before: ServerSample, after: ServerSample) -> float:
    """CPU seconds the PostgreSQL backends spent between two samples (0 when unknown)."""
    if before.cpu is None or after.cpu is None:
        return 0.0
    return sum(t - before.cpu.get(pid, 0.0) for pid, t in after.cpu.items())


def cpu_line(cpu: dict[str, float]) -> str:
    """CPU per email, in microseconds, of each side and in all."""
    parts = [f"{name} {seconds * 1e6:,.0f} us" for name, seconds in cpu.items()]
    return f"CPU per email: {', '.join(parts)}; in all {sum(cpu.values()) * 1e6:,.0f} us"


def main(env: dict[str, str], sizes: list[int], tmp: Path, concurrency: int, shared: bool) -> None:
    sink = Sink()
    try:
        env = {**env, **smtp_env(sink.port)}
        os.environ.update(smtp_env(sink.port))
        results = [email_run(env, n, tmp, concurrency, shared, sink) for n in sizes]
        count = min(sizes[0], 10_000)
        ours, theirs = time.process_time(), sink.cpu()
        channel_rate, _ = bench_channel(
            sink.port, count, SmtpSettings().pool_size, Settings().delivery_batch_size
        )
        channel_cpu = {
            "sender": (time.process_time() - ours) / count,
            "sink": (sink.cpu() - theirs) / count,
        }
    finally:
        sink.close()
    for r in results:
        print(
            f"campaign by email {r['n']:>7,}: {r['seconds']:6.2f} s to every email accepted by "
            f"the sink = {r['rate']:7,.0f} emails/s (and in-app); {r['extra']:.0f} extra; "
            f"worker peak RSS {r['peak'] / 1024:.1f} MiB; "
            f"{r['rate'] / channel_rate:.0%} of the email channel's rate"
        )
        print(f"  {cpu_line(r['cpu'])}")
    print(
        f"email channel alone (bench.email's EmailChannel run, {count:,} messages, "
        f"one process, same sink): {channel_rate:,.0f} emails/s"
    )
    print(f"  {cpu_line(channel_cpu)}")
