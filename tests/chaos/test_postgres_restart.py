"""PostgreSQL goes down mid-run (a fast shutdown cuts every connection) and comes back:
the worker's failed writes are retried, the sweep re-rings what was stranded, nothing
is lost. The server is a private cluster, never the shared one."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy.exc import OperationalError

from dispatcher import Dispatcher
from tests.chaos.private_postgres import PrivatePostgres
from tests.chaos.support import LONG, deliveries, reconcile, report, seed_subscribers, settled
from tests.chaos.test_worker_killed import IN_FLIGHT, _sent_emails
from tests.conftest import REDIS_HOST, REDIS_PORT, Beat, Worker, make_settings, wait_for
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

RECIPIENTS = 3000 if LONG else 1000
DOWN_SECONDS = 20 if LONG else 5
#: A broker and Redis database of its own (the three-node test uses 12 and 13).
BROKER = f"redis://{REDIS_HOST}:{REDIS_PORT}/14"


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    yield cluster
    cluster.destroy()


def _settled(d: Dispatcher, expected: int) -> bool:
    try:
        return settled(d, expected)
    except OperationalError:  # still coming back
        return False


def test_postgres_restart_mid_run_loses_nothing(
    private_postgres: PrivatePostgres,
    redis_client: redis.Redis,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    redis.Redis.from_url(BROKER).flushdb()
    d = Dispatcher(make_settings(private_postgres.url, broker_url=BROKER, redis_url=BROKER))
    d.migrate()
    smtp_server.recorder.strict = False
    env = smtp_server.env(
        DISPATCHER_LIVENESS_SECONDS="3",
        DISPATCHER_SMTP_FROM_ADDRESS="Avisos <avisos@example.com>",
    )
    worker = Worker(d.settings, tmp_path / "worker.log", env)
    beat = Beat(d.settings, tmp_path / "beat.log")
    try:
        people = seed_subscribers(d, RECIPIENTS)
        data = dict(d.catalog.get("report_generated").example)
        started = time.monotonic()
        d.notify("report_generated", to=people, data=data)
        wait_for(lambda: _sent_emails(d) >= RECIPIENTS // 10, timeout=120, interval=0.02)
        private_postgres.stop()
        at_stop = len(smtp_server.messages)
        time.sleep(DOWN_SECONDS)
        private_postgres.start()
        restarted = time.monotonic()
        try:
            wait_for(lambda: _settled(d, RECIPIENTS * 2), timeout=180, interval=0.2)
        except AssertionError:
            counts = Counter((r.channel, r.status.value, r.claimed_by) for r in deliveries(d))
            raise AssertionError(f"not settled: {dict(counts)}\n{worker.log()[-6000:]}") from None
        settle = time.monotonic() - restarted
        time.sleep(1)  # a duplicate would arrive now
        result = reconcile(
            d, f"PostgreSQL down {DOWN_SECONDS} s", RECIPIENTS, smtp_server.message_ids(), started
        )
        result.settle_seconds = settle
        report(result)
        print(f"(stopped with {at_stop} emails at the server; settle counted from the restart)")
        assert worker.process.poll() is None  # the worker rode it out
        assert (result.lost, result.emails) == (0, RECIPIENTS)
        # Only what the server accepted while its outcome could not be written twice.
        assert result.duplicates <= IN_FLIGHT
    finally:
        beat.stop()
        worker.stop()
        d.close()
