"""The relay goes away, then answers 4xx to some recipients: everything arrives once."""

from __future__ import annotations

import time
from pathlib import Path

from dispatcher import DeliveryStatus, Dispatcher
from tests.chaos.support import LONG, deliveries, reconcile, report, seed_subscribers, settled
from tests.conftest import Beat, StartWorker, wait_for
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

RECIPIENTS = 200
DOWN_SECONDS = 20 if LONG else 5


def test_smtp_down_then_4xx_for_some_recipients_delivers_each_once(
    dispatcher: Dispatcher, start_worker: StartWorker, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    start_worker(
        smtp_server.env(
            DISPATCHER_SMTP_BACKOFF_BASE_SECONDS="0.5",
            DISPATCHER_SMTP_BACKOFF_CAP_SECONDS="2",
            DISPATCHER_SMTP_MAX_ATTEMPTS="50",
            DISPATCHER_SMTP_FROM_ADDRESS="Avisos <avisos@example.com>",
        )
    )
    smtp_server.recorder.strict = False
    beat = Beat(dispatcher.settings, tmp_path / "beat.log")
    try:
        people = seed_subscribers(dispatcher, RECIPIENTS)
        for person in people[::10]:  # one in ten: refused twice, then accepted
            smtp_server.fail(f"{person}@example.com", "451 4.3.0 try again later", times=2)
        smtp_server.stop()
        data = dict(dispatcher.catalog.get("report_generated").example)
        started = time.monotonic()
        dispatcher.notify("report_generated", to=people, data=data)
        time.sleep(DOWN_SECONDS)
        smtp_server.start()
        wait_for(lambda: settled(dispatcher, RECIPIENTS * 2), timeout=120, interval=0.2)
    finally:
        beat.stop()
    time.sleep(1)
    result = reconcile(
        dispatcher,
        f"SMTP down {DOWN_SECONDS} s, then 4xx",
        RECIPIENTS,
        smtp_server.message_ids(),
        started,
    )
    report(result)
    assert (result.lost, result.duplicates, result.emails) == (0, 0, RECIPIENTS)
    rows = deliveries(dispatcher, "email")
    assert {r.status for r in rows} == {DeliveryStatus.SENT}
    assert max(r.attempts for r in rows) >= 3  # the 4xx ones tried again
