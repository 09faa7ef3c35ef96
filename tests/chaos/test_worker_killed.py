"""SIGKILL of a whole worker in the middle of a large event: its claims are taken back
within seconds of its restart (the liveness key expired), nothing is lost, and only the
messages the server accepted in the instant before the kill arrive twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from dispatcher import DeliveryStatus, Dispatcher
from dispatcher.db.models import Delivery
from tests.chaos.support import (
    LONG,
    kill_tree,
    reconcile,
    report,
    seed_subscribers,
    settled,
)
from tests.conftest import Beat, StartWorker, wait_for
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

#: Pool processes x SMTP connections each: the most messages on the wire at the kill.
IN_FLIGHT = 2 * 4


def _held_by(d: Dispatcher, processes: set[str]) -> int:
    # Counted by the database: loading 20,000 rows every 0.2 s in this process starved
    # the SMTP server's thread beside it and made the workers' batches crawl.
    with d.store.session() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(
                    Delivery.status == DeliveryStatus.SENDING,
                    Delivery.claimed_by.in_(sorted(processes)),
                )
            )
            or 0
        )


def _sending(d: Dispatcher) -> int:
    with d.store.session() as s:
        return (
            s.scalar(
                select(func.count())
                .select_from(Delivery)
                .where(Delivery.status == DeliveryStatus.SENDING)
            )
            or 0
        )


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


@pytest.mark.parametrize("recipients", [1000, *([10_000] if LONG else [])])
def test_a_worker_killed_mid_batch_is_made_good_within_seconds_of_its_restart(
    dispatcher: Dispatcher,
    start_worker: StartWorker,
    stop_worker: Callable[[], None],
    smtp_server: SmtpServer,
    tmp_path: Path,
    recipients: int,
) -> None:
    env = smtp_server.env(
        DISPATCHER_LIVENESS_SECONDS="3",
        DISPATCHER_SMTP_FROM_ADDRESS="Avisos <avisos@example.com>",
    )
    worker = start_worker(env)
    smtp_server.recorder.strict = False  # parsing every message would slow the server
    beat = Beat(dispatcher.settings, tmp_path / "beat.log")
    try:
        people = seed_subscribers(dispatcher, recipients)
        data = dict(dispatcher.catalog.get("report_generated").example)
        started = time.monotonic()
        dispatcher.notify("report_generated", to=people, data=data)
        # Mid-batch: some emails sent, and claims held right now.
        wait_for(
            lambda: _sent_emails(dispatcher) >= recipients // 10 and _sending(dispatcher),
            timeout=120,
            interval=0.02,
        )
        killed_after = time.monotonic() - started
        kill_tree(worker.process.pid)
        worker.process.wait()
        at_kill = len(smtp_server.messages)
        with dispatcher.store.session() as s:
            sending = (
                s.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.status == DeliveryStatus.SENDING)
                )
                or 0
            )
        with dispatcher.store.session() as s:
            dead = set(
                s.scalars(
                    select(Delivery.claimed_by).where(Delivery.claimed_by.is_not(None)).distinct()
                )
            )
        stop_worker()
        restarted = time.monotonic()
        start_worker(env)
        wait_for(lambda: not _held_by(dispatcher, dead), timeout=60, interval=0.2)
        taken_back = time.monotonic() - restarted
        wait_for(
            lambda: settled(dispatcher, recipients * 2), timeout=90 + recipients / 20, interval=0.2
        )
        settle = time.monotonic() - restarted
        time.sleep(1)
        result = reconcile(
            dispatcher, "SIGKILL mid-batch", recipients, smtp_server.message_ids(), started
        )
        result.settle_seconds = settle
        report(result)
        print(
            f"(killed {killed_after:.1f} s after notify with {at_kill} emails"
            f" at the server and {sending} rows sending; taken back {taken_back:.1f} s after"
            " the restart)"
        )
        assert result.lost == 0
        assert result.emails == recipients
        assert result.duplicates <= IN_FLIGHT
        assert taken_back <= 20  # the lease is 300 s: the liveness key expired instead
        if recipients <= 1000:  # a larger run's remainder takes longer than that to send
            assert settle <= 30
    finally:
        beat.stop()
