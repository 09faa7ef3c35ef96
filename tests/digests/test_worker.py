"""Digests through real processes: a real worker and two real beats (the flush and the
sweep each run twice per tick), a real SMTP server; and flushes racing in threads."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dispatcher import DeliveryStatus, Dispatcher
from dispatcher.worker import Runtime
from tests.chaos.support import kill_tree
from tests.conftest import Beat, StartWorker, make_settings, wait_for
from tests.digests.digest_types import register_types
from tests.digests.support import UPDATE, by_channel, text_of, update, windows
from tests.policies.support import at
from tests.smtp_server import SmtpServer

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TYPES = '["tests.app_types","tests.digests.digest_types"]'


def test_flushes_racing_in_four_processes_send_one_email(
    mailer: Dispatcher, smtp_server: SmtpServer
) -> None:
    d = mailer
    d.subscribers.upsert("ana", email="ana@example.com")
    for minute, by in ((0, "Luis"), (4, "Marta"), (9, "Pablo")):
        update(d, "ana", by, T0 + timedelta(minutes=minute))
    others = [Dispatcher(d.settings) for _ in range(4)]
    for o in others:
        register_types(o.catalog)
    barrier = threading.Barrier(len(others))
    sent: list[int] = []

    def flush(other: Dispatcher) -> None:
        runtime = Runtime(other)
        barrier.wait()
        sent.append(runtime.flush_digests().report.counts.get("sent", 0))
        runtime.close()

    try:
        with at(T0 + timedelta(minutes=15)):
            threads = [threading.Thread(target=flush, args=(o,)) for o in others]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        for o in others:
            o.close()
    assert sorted(sent) == [0, 0, 0, 1]
    assert len(smtp_server.to("ana@example.com")) == 1


def test_a_real_worker_and_two_beats_send_one_digest_of_every_update(
    dispatcher: Dispatcher,
    start_worker: StartWorker,
    smtp_server: SmtpServer,
    database_url: str,
    tmp_path: Path,
) -> None:
    window = timedelta(seconds=3)
    start_worker(smtp_server.env(DISPATCHER_TYPES_MODULES=TYPES, DIGEST_TEST_WINDOW_SECONDS="3"))
    d = Dispatcher(make_settings(database_url, broker_url=dispatcher.settings.broker_url))
    register_types(d.catalog, window)
    beats = [Beat(d.settings, tmp_path / f"beat{i}.log") for i in range(2)]
    try:
        d.subscribers.upsert("ana", email="ana@example.com")
        d.subscribers.upsert("bob", email="bob@example.com")
        for by in ("Luis", "Marta", "Pablo"):
            d.notify("ticket_updated", to=["ana", "bob"], data={**UPDATE, "updated_by": by})
        d.notify(
            "ticket_updated", to="ana", data={**UPDATE, "updated_by": "Sara"}, priority="urgent"
        )

        def in_app_sent() -> bool:
            rows = by_channel(d, "ana").get("in_app", [])
            return [r.status for r in rows] == [DeliveryStatus.SENT] * 4

        wait_for(in_app_sent, timeout=30)
        wait_for(lambda: len(smtp_server.to("bob@example.com")) == 1, timeout=30)
        wait_for(lambda: len(smtp_server.to("ana@example.com")) == 2, timeout=30)
        # Several more ticks of both beats: nothing more goes out.
        time.sleep(7)
        assert len(smtp_server.to("bob@example.com")) == 1
        ana = smtp_server.to("ana@example.com")
        assert len(ana) == 2
        urgent, digest = sorted(ana, key=lambda m: "Sara" not in text_of(m))
        assert "Sara changed" in text_of(urgent) and "Luis" not in text_of(urgent)
        text = text_of(digest)
        assert [text.count(f"{by} changed") for by in ("Luis", "Marta", "Pablo")] == [1, 1, 1]
        assert "Sara" not in text
        assert {(w.status, w.item_count) for w in windows(d)} == {("flushed", 3)}
        assert len(windows(d)) == 2
        assert len(set(smtp_server.message_ids())) == len(smtp_server.messages) == 3
    finally:
        for b in beats:
            b.stop()
        d.close()


def test_a_worker_killed_while_sending_the_digest_loses_no_item(
    dispatcher: Dispatcher,
    start_worker: StartWorker,
    smtp_server: SmtpServer,
    database_url: str,
    tmp_path: Path,
) -> None:
    """SIGKILL of the whole worker while the digest is on the wire (the SMTP server holds
    DATA): the restarted worker takes the claim back and sends the digest, every item in
    it. The only repeat possible is the one the server accepted in the instant before
    the kill, and it carries the same Message-ID (the house's rule for every email)."""
    env = smtp_server.env(DISPATCHER_TYPES_MODULES=TYPES, DIGEST_TEST_WINDOW_SECONDS="4")
    first = start_worker(env)
    d = Dispatcher(make_settings(database_url, broker_url=dispatcher.settings.broker_url))
    register_types(d.catalog, timedelta(seconds=4))
    beat = Beat(d.settings, tmp_path / "beat.log")
    try:
        d.subscribers.upsert("ana", email="ana@example.com")
        smtp_server.recorder.delay = 3.0
        for by in ("Luis", "Marta", "Pablo"):
            d.notify("ticket_updated", to="ana", data={**UPDATE, "updated_by": by})

        def carrier_status() -> DeliveryStatus | None:
            email = by_channel(d, "ana").get("email", [])
            return email[0].status if email else None

        def flushing() -> bool:
            found = windows(d)
            return bool(found) and found[0].status == "flushed"

        # The window closed in the carrier's claim: the digest is on its way.
        wait_for(flushing, timeout=30, interval=0.02)
        assert carrier_status() is DeliveryStatus.SENDING
        time.sleep(1.0)  # in DATA
        kill_tree(first.process.pid)
        first.process.wait()
        smtp_server.recorder.delay = 0.0
        assert windows(d)[0].item_count == 3
        start_worker(env)
        wait_for(lambda: carrier_status() is DeliveryStatus.SENT, timeout=90)
        time.sleep(6)  # more ticks: nothing more
        messages = smtp_server.to("ana@example.com")
        assert 1 <= len(messages) <= 2
        assert len({m.parse()["message-id"] for m in messages}) == 1
        for message in messages:
            text = text_of(message)
            assert [text.count(f"{by} changed") for by in ("Luis", "Marta", "Pablo")] == [1, 1, 1]
        assert [(w.status, w.item_count) for w in windows(d)] == [("flushed", 3)]
    finally:
        smtp_server.recorder.delay = 0.0
        beat.stop()
        d.close()
