"""Several nodes on one broker: a worker for urgent and high traffic only, two for the
rest, one beat. One of the two is SIGKILLed mid-run: nothing is lost, and urgent/high
work keeps flowing through its own node. (Gateways are not part of this scenario.)"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from dispatcher import DeliveryStatus, Dispatcher, names
from tests.chaos.support import deliveries, kill_tree, reconcile, report, seed_subscribers, settled
from tests.chaos.test_worker_killed import IN_FLIGHT, _sent_emails
from tests.conftest import REDIS_HOST, REDIS_PORT, Beat, Worker, _truncate, make_settings, wait_for
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

RECIPIENTS = 1000
URGENT_QUEUES = f"{names.for_priority('urgent')},{names.for_priority('high')}"
OTHER_QUEUES = ",".join(q for q in names.ALL if q not in URGENT_QUEUES.split(","))


def _node(name: str, queues: str) -> list[str]:
    return [
        "worker", "--concurrency", "2", "--loglevel", "INFO", "--without-mingle",
        "--without-gossip", "-n", f"{name}@%h", "-Q", queues,
    ]  # fmt: skip


def test_three_nodes_one_killed_lose_nothing(
    database_url: str, backend: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    # A broker database of its own: no worker left by another test listens there.
    broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/{12 if backend == 'sqlite' else 13}"
    redis.Redis.from_url(broker).flushdb()
    d = Dispatcher(make_settings(database_url, broker_url=broker))
    _truncate(d)
    smtp_server.recorder.strict = False
    env = smtp_server.env(
        DISPATCHER_LIVENESS_SECONDS="3",
        DISPATCHER_SMTP_FROM_ADDRESS="Avisos <avisos@example.com>",
    )
    urgent = Worker(d.settings, tmp_path / "urgent.log", env, _node("urgent", URGENT_QUEUES))
    rest = [
        Worker(d.settings, tmp_path / f"rest{i}.log", env, _node(f"rest{i}", OTHER_QUEUES))
        for i in (1, 2)
    ]
    beat = Beat(d.settings, tmp_path / "beat.log")
    try:
        people = seed_subscribers(d, RECIPIENTS)
        started = time.monotonic()
        data = dict(d.catalog.get("report_generated").example)
        d.notify("report_generated", to=people, data=data)
        wait_for(lambda: _sent_emails(d) >= RECIPIENTS // 10, timeout=120, interval=0.02)
        kill_tree(rest[0].process.pid)
        rest[0].process.wait()
        # High-priority work during the outage goes through its own node.
        ticket = dict(d.catalog.get("ticket_created").example)
        d.notify("ticket_created", to=people[:20], data=ticket)
        expected = RECIPIENTS * 2 + 20 * 3
        wait_for(lambda: settled(d, expected), timeout=180, interval=0.2)
        time.sleep(1)
        result = reconcile(
            d, "3 workers, one SIGKILLed", RECIPIENTS + 20, smtp_server.message_ids(), started
        )
        report(result)
        rows = deliveries(d)
        assert DeliveryStatus.FAILED not in {r.status for r in rows}
        assert result.duplicates <= IN_FLIGHT
        # Every recipient's report and each ticket: in the inbox and by email.
        assert (result.lost, result.emails) == (0, RECIPIENTS + 20)
        assert "dispatcher.fanout" in urgent.log()
    finally:
        beat.stop()
        for w in [urgent, *rest]:
            w.stop()
        d.close()
