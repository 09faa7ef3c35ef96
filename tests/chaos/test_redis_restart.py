"""Redis (broker and pub/sub) restarted while a worker has tasks in flight: the worker
reconnects (or is restarted, as a supervisor would), the sweep re-rings what the restart
lost, and nothing is lost."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import func, select

from dispatcher import DeliveryStatus, Dispatcher
from dispatcher.db.models import Delivery
from tests.chaos.support import reconcile, report, seed_subscribers, settled
from tests.conftest import Beat, Worker, _truncate, make_settings, wait_for
from tests.redis_server import PrivateRedis, private_redis_fixture  # noqa: F401 - fixture
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

RECIPIENTS = 1000
IN_FLIGHT = 2 * 4


def _sent_emails(d: Dispatcher) -> int:
    with d.store.session() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.channel == "email", Delivery.status == DeliveryStatus.SENT)
            )
            or 0
        )


def test_a_redis_restart_with_tasks_in_flight_loses_nothing(
    database_url: str, private_redis: PrivateRedis, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    settings = make_settings(
        database_url, broker_url=private_redis.url, redis_url=private_redis.url
    )
    d = Dispatcher(settings)
    _truncate(d)
    smtp_server.recorder.strict = False
    env = smtp_server.env(
        DISPATCHER_LIVENESS_SECONDS="3",
        DISPATCHER_SMTP_FROM_ADDRESS="Avisos <avisos@example.com>",
    )
    worker = Worker(settings, tmp_path / "worker.log", env)
    beat = Beat(settings, tmp_path / "beat.log")
    restarts = 0
    try:
        people = seed_subscribers(d, RECIPIENTS)
        data = dict(d.catalog.get("report_generated").example)
        started = time.monotonic()
        d.notify("report_generated", to=people, data=data)
        wait_for(lambda: _sent_emails(d) >= RECIPIENTS // 10, timeout=120, interval=0.02)
        private_redis.stop()
        time.sleep(1)
        private_redis.start()

        def done() -> bool:
            nonlocal worker, restarts
            if worker.process.poll() is not None:  # what a supervisor would do
                worker.stop()
                restarts += 1
                worker = Worker(settings, tmp_path / f"worker{restarts}.log", env)
            return settled(d, RECIPIENTS * 2)

        wait_for(done, timeout=180, interval=0.5)
        time.sleep(1)
        result = reconcile(
            d, "Redis restart, tasks in flight", RECIPIENTS, smtp_server.message_ids(), started
        )
        report(result)
        print(f"(worker restarts needed: {restarts})")
        assert (result.lost, result.emails) == (0, RECIPIENTS)
        assert result.duplicates <= IN_FLIGHT
    finally:
        beat.stop()
        worker.stop()
        d.close()
