"""Broker faults: Redis flushed while delivery messages wait in it, and two beats at once.
The database is the truth: the sweep re-rings, claims make duplicates harmless."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from dispatcher import DeliveryStatus, Dispatcher
from tests.chaos.support import deliveries, reconcile, report, seed_subscribers, settled
from tests.conftest import Beat, StartWorker, runtime, wait_for
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

RECIPIENTS = 300


def _env(smtp_server: SmtpServer) -> dict[str, str]:
    return smtp_server.env(
        DISPATCHER_LIVENESS_SECONDS="3",
        DISPATCHER_SMTP_FROM_ADDRESS="Avisos <avisos@example.com>",
        DISPATCHER_INLINE_DELIVERY_LIMIT="0",
    )


@pytest.mark.redis_broker  # reads or flushes Redis lists
def test_flushing_redis_while_delivery_messages_are_queued_loses_nothing(
    dispatcher: Dispatcher,
    start_worker: StartWorker,
    stop_worker: Callable[[], None],
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    stop_worker()
    smtp_server.recorder.strict = False
    people = seed_subscribers(dispatcher, RECIPIENTS)
    data = dict(dispatcher.catalog.get("report_generated").example)
    started = time.monotonic()
    receipt = dispatcher.notify("report_generated", to=people, data=data)
    runtime(dispatcher).fanout(receipt.id)  # inline delivery off: the broker holds the work
    broker = redis.Redis.from_url(dispatcher.settings.broker_url)
    assert broker.llen("dispatcher.low") >= 2  # deliver messages for in-app and email
    broker.flushall()
    assert broker.llen("dispatcher.low") == 0
    start_worker(_env(smtp_server))
    beat = Beat(dispatcher.settings, tmp_path / "beat.log")
    try:
        wait_for(lambda: settled(dispatcher, RECIPIENTS * 2), timeout=120, interval=0.2)
    finally:
        beat.stop()
    time.sleep(1)
    result = reconcile(
        dispatcher,
        "Redis FLUSHALL, deliveries queued",
        RECIPIENTS,
        smtp_server.message_ids(),
        started,
    )
    report(result)
    assert (result.lost, result.duplicates, result.emails) == (0, 0, RECIPIENTS)
    assert {r.attempts for r in deliveries(dispatcher)} == {1}


def test_two_beats_at_once_send_everything_once(
    dispatcher: Dispatcher,
    start_worker: StartWorker,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    smtp_server.recorder.strict = False
    start_worker(_env(smtp_server))
    beats = [Beat(dispatcher.settings, tmp_path / f"beat{i}.log") for i in range(2)]
    try:
        people = seed_subscribers(dispatcher, RECIPIENTS)
        data = dict(dispatcher.catalog.get("report_generated").example)
        started = time.monotonic()
        # Nobody rings: both beats' sweeps find the same rows and ring them twice.
        dispatcher._doorbell.breaker.failed("test")
        dispatcher.notify("report_generated", to=people, data=data)
        wait_for(lambda: settled(dispatcher, RECIPIENTS * 2), timeout=120, interval=0.2)
        # Both beats really ran (a loaded machine may start the second one late).
        wait_for(lambda: all("Sending due task sweep" in b.log() for b in beats), timeout=30)
    finally:
        for beat in beats:
            beat.stop()
    time.sleep(1)
    result = reconcile(
        dispatcher, "two beats at once", RECIPIENTS, smtp_server.message_ids(), started
    )
    report(result)
    assert all("Sending due task sweep" in beat.log() for beat in beats)
    assert (result.lost, result.duplicates, result.emails) == (0, 0, RECIPIENTS)
    assert {r.status for r in deliveries(dispatcher)} == {DeliveryStatus.SENT}
