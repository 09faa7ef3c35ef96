"""RabbitMQ as the broker (``DISPATCHER_TEST_AMQP_URL``, default the local server's ``/``
vhost; give parallel runs a vhost each): a worker delivers, a SIGKILLed worker is made
good within seconds of its restart, and ``notify`` does not wait for a broker that is
not there. Redis still carries the latch, liveness keys and pub/sub."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dispatcher import DeliveryStatus, Dispatcher
from tests.chaos.support import (
    deliveries,
    kill_tree,
    reconcile,
    report,
    seed_subscribers,
    settled,
)
from tests.chaos.test_worker_killed import IN_FLIGHT, _held_by, _sent_emails
from tests.conftest import Beat, Worker, _truncate, make_settings, wait_for
from tests.engine.test_doorbell import _timed_notifies, assert_never_waited, p99
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    free_port,
    smtp_server_fixture,
    smtp_server_session,
)

AMQP_URL = os.environ.get("DISPATCHER_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


@pytest.fixture
def amqp_dispatcher(database_url: str) -> Dispatcher:
    d = Dispatcher(make_settings(database_url, broker_url=AMQP_URL))
    _truncate(d)
    return d


def _env(smtp_server: SmtpServer) -> dict[str, str]:
    return smtp_server.env(
        DISPATCHER_LIVENESS_SECONDS="3",
        DISPATCHER_SMTP_FROM_ADDRESS="Avisos <avisos@example.com>",
    )


def test_a_worker_on_rabbitmq_delivers_each_message_once(
    amqp_dispatcher: Dispatcher, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    d = amqp_dispatcher
    smtp_server.recorder.strict = False
    worker = Worker(d.settings, tmp_path / "worker.log", _env(smtp_server))
    try:
        people = seed_subscribers(d, 300)
        started = time.monotonic()
        d.notify(
            "report_generated", to=people, data=dict(d.catalog.get("report_generated").example)
        )
        wait_for(lambda: settled(d, 300 * 2), timeout=120, interval=0.2)
        time.sleep(1)
        result = reconcile(d, "RabbitMQ: one event", 300, smtp_server.message_ids(), started)
        report(result)
        assert (result.lost, result.duplicates, result.emails) == (0, 0, 300)
        assert {r.status for r in deliveries(d)} == {DeliveryStatus.SENT}
    finally:
        worker.stop()
        d.close()


def test_a_worker_killed_on_rabbitmq_is_made_good_within_seconds(
    amqp_dispatcher: Dispatcher, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    d = amqp_dispatcher
    recipients = 1000
    smtp_server.recorder.strict = False
    env = _env(smtp_server)
    worker = Worker(d.settings, tmp_path / "worker.log", env)
    beat = Beat(d.settings, tmp_path / "beat.log")
    try:
        people = seed_subscribers(d, recipients)
        started = time.monotonic()
        data = dict(d.catalog.get("report_generated").example)
        d.notify("report_generated", to=people, data=data)
        wait_for(lambda: _sent_emails(d) >= recipients // 10, timeout=120, interval=0.02)
        kill_tree(worker.process.pid)
        worker.process.wait()
        dead = {r.claimed_by for r in deliveries(d) if r.claimed_by}
        worker.stop()
        restarted = time.monotonic()
        worker = Worker(d.settings, tmp_path / "worker2.log", env)
        wait_for(lambda: not _held_by(d, dead), timeout=60, interval=0.2)
        taken_back = time.monotonic() - restarted
        wait_for(lambda: settled(d, recipients * 2), timeout=120, interval=0.2)
        settle = time.monotonic() - restarted
        time.sleep(1)
        result = reconcile(
            d, "RabbitMQ: SIGKILL mid-batch", recipients, smtp_server.message_ids(), started
        )
        result.settle_seconds = settle
        report(result)
        print(f"(claims taken back {taken_back:.1f} s after the restart)")
        assert (result.lost, result.emails) == (0, recipients)
        assert result.duplicates <= IN_FLIGHT
        assert taken_back <= 20
    finally:
        beat.stop()
        worker.stop()
        d.close()


def test_notify_does_not_wait_for_a_rabbitmq_that_is_not_there(database_url: str) -> None:
    up = Dispatcher(make_settings(database_url, broker_url=AMQP_URL))
    _truncate(up)
    down = Dispatcher(
        make_settings(database_url, broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}//")
    )
    try:
        up.subscribers.upsert("u1")
        priority = up.catalog.get("payout_sent").priority
        # The latch would silence most rings: release it before each call.
        fast = []
        for i in range(100):
            up._doorbell.latch.release(priority, False)
            fast += _timed_notifies(up, 1, i)
        slow = _timed_notifies(down, 200, 1000)
        print(
            f"\nRabbitMQ notify p99: up {p99(fast) * 1000:.1f} ms, down {p99(slow) * 1000:.1f} ms"
        )
        assert_never_waited(fast, slow, down.settings.ring_timeout_seconds)
    finally:
        up.close()
        down.close()
