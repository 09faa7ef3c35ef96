"""A relay slower than the lease: the batch renews its claim as it goes, so no second
process sends it again (issue 15: 500 Message-IDs arrived twice)."""

from __future__ import annotations

import time

import pytest

from dispatcher import DeliveryStatus, Dispatcher
from tests.chaos.support import LONG, deliveries, reconcile, report, seed_subscribers, settled
from tests.conftest import StartWorker, runtime, wait_for
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

#: (recipients, seconds before each reply, lease seconds, batch size)
SHORT = (120, 0.1, 2, 100)
FULL = (600, 0.3, 30, 500)


@pytest.mark.parametrize("shape", [SHORT, *([FULL] if LONG else [])], ids=lambda s: f"{s[0]}")
def test_a_batch_slower_than_its_lease_is_sent_once(
    dispatcher: Dispatcher,
    start_worker: StartWorker,
    smtp_server: SmtpServer,
    shape: tuple[int, float, int, int],
) -> None:
    recipients, delay, lease, batch = shape
    # Two pool processes: the idle one is the one that used to take the rows over.
    start_worker(
        smtp_server.env(
            DISPATCHER_LEASE_SECONDS=str(lease),
            DISPATCHER_DELIVERY_BATCH_SIZE=str(batch),
            DISPATCHER_SMTP_FROM_ADDRESS="Avisos <avisos@example.com>",
        )
    )
    smtp_server.recorder.delay = delay
    people = seed_subscribers(dispatcher, recipients)
    data = dict(dispatcher.catalog.get("report_generated").example)
    started = time.monotonic()
    dispatcher.notify("report_generated", to=people, data=data)

    def done() -> bool:
        runtime(dispatcher).sweep()  # what beat does every few seconds
        return settled(dispatcher, recipients * 2)

    # The batch takes several leases: 4 connections, two delayed replies per message.
    budget = recipients * 2 * delay / 4 * 3 + 30
    wait_for(done, timeout=budget, interval=0.5)
    time.sleep(2 * delay + 1)  # a second copy still on its way would arrive now
    result = reconcile(
        dispatcher, "slow relay past the lease", recipients, smtp_server.message_ids(), started
    )
    report(result)
    assert result.duplicates == 0
    assert result.lost == 0
    assert result.emails == recipients
    rows = deliveries(dispatcher, "email")
    assert {r.status for r in rows} == {DeliveryStatus.SENT}
    assert {r.attempts for r in rows} == {1}  # never taken back
