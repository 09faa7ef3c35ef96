"""Digests in this process with an injected clock, on both backends, through the real
email channel and a real SMTP server: holding, flushing, urgent, re-runs, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher import DeliveryStatus, Dispatcher, Reason
from tests.conftest import runtime
from tests.digests.support import by_channel, flush, items, text_of, update, windows
from tests.policies.support import at
from tests.smtp_server import SmtpServer

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def _three_updates(d: Dispatcher) -> None:
    d.subscribers.upsert("ana", email="ana@example.com", timezone="Europe/Madrid")
    for minute, by in ((0, "Luis"), (4, "Marta"), (9, "Pablo")):
        update(d, "ana", by, T0 + timedelta(minutes=minute))


def test_three_updates_make_three_in_app_and_one_digest_email(
    mailer: Dispatcher, smtp_server: SmtpServer
) -> None:
    d = mailer
    _three_updates(d)
    rows = by_channel(d, "ana")
    assert [r.status for r in rows["in_app"]] == [DeliveryStatus.SENT] * 3
    carrier, *held = rows["email"]
    [window] = windows(d)
    assert (window.status, window.item_count, window.closes_at) == ("open", 3, T0 + WINDOW)
    assert window.delivery_id == carrier.id
    assert carrier.status is DeliveryStatus.SCHEDULED and carrier.reason == Reason.DIGEST
    assert carrier.scheduled_for == T0 + WINDOW
    assert carrier.detail == f"opens digest window {window.id}; sent at {(T0 + WINDOW).isoformat()}"
    for row in held:
        assert (row.status, row.reason) == (DeliveryStatus.SKIPPED, Reason.DIGEST)
        assert row.detail is not None
        assert row.detail.startswith(
            f"in digest window {window.id}, sent with delivery {carrier.id}"
        )
    assert items(d, window.id) == sorted(r.id for r in rows["email"])
    assert smtp_server.messages == []

    assert flush(d, T0 + WINDOW - timedelta(seconds=1))["due"] == 0
    assert smtp_server.messages == []
    assert flush(d, T0 + WINDOW) == {"due": 1, "dropped": 0, "sent": 1}
    [message] = smtp_server.to("ana@example.com")
    text = text_of(message)
    assert message.parse()["subject"] == "3 ticket updates: Copa del Rey Final"
    # Oldest first, each with its own data, at the reader's wall-clock time (UTC+1).
    positions = [text.index(f"{by} changed ticket #7") for by in ("Luis", "Marta", "Pablo")]
    assert positions == sorted(positions)
    assert "1:00 PM Luis" in text and "1:04 PM Marta" in text and "1:09 PM Pablo" in text
    assert by_channel(d, "ana")["email"][0].status is DeliveryStatus.SENT
    assert windows(d)[0].status == "flushed"

    # The next update opens the next window.
    update(d, "ana", "Rosa", T0 + WINDOW + timedelta(minutes=1))
    assert [w.status for w in windows(d)] == ["flushed", "open"]
    assert len(smtp_server.messages) == 1


def test_explain_shows_the_window(mailer: Dispatcher) -> None:
    d = mailer
    _three_updates(d)
    [window] = windows(d)
    email = by_channel(d, "ana")["email"]
    for row in email:
        text = "\n".join(d.explain(f"n{row.notification_id}").lines())
        assert f"digest window {window.id}" in text, text


def test_urgent_is_never_digested(mailer: Dispatcher, smtp_server: SmtpServer) -> None:
    d = mailer
    _three_updates(d)
    update(d, "ana", "Sara", T0 + timedelta(minutes=10), priority="urgent")
    email = by_channel(d, "ana")["email"]
    assert email[-1].status is DeliveryStatus.SENT and email[-1].reason is None
    [message] = smtp_server.to("ana@example.com")
    assert "Sara" in text_of(message)
    assert windows(d)[0].item_count == 3


def test_a_flush_run_twice_sends_one_email(mailer: Dispatcher, smtp_server: SmtpServer) -> None:
    d = mailer
    _three_updates(d)
    first = flush(d, T0 + WINDOW)
    second = flush(d, T0 + WINDOW)
    third = flush(d, T0 + WINDOW + timedelta(minutes=5))
    assert (first["sent"], second["due"], third["due"]) == (1, 0, 0)
    assert len(smtp_server.to("ana@example.com")) == 1


def test_the_sweep_and_the_flush_together_send_one_email(
    mailer: Dispatcher, smtp_server: SmtpServer
) -> None:
    d = mailer
    _three_updates(d)
    when = T0 + WINDOW + timedelta(seconds=3)
    with at(when):
        runtime(d).sweep()  # rings the carrier's deliver task on a broker nobody reads
        carrier = by_channel(d, "ana")["email"][0].id
        runtime(d).deliver([carrier])  # ... as if a worker took it
    flush(d, when)
    with at(when):
        runtime(d).deliver([carrier])
    assert len(smtp_server.to("ana@example.com")) == 1


@pytest.mark.parametrize(
    ("first", "zone", "local_times"),
    [
        # Madrid falls back at 01:00 UTC on 25 Oct 2026 (03:00 CEST -> 02:00 CET): a
        # window opened at 02:50 CEST closes 15 real minutes later, at 02:05 CET.
        (datetime(2026, 10, 25, 0, 50, tzinfo=UTC), "Europe/Madrid", ("2:50", "2:58", "2:02")),
        # Madrid springs forward at 01:00 UTC on 29 Mar 2026 (02:00 CET -> 03:00 CEST).
        (datetime(2026, 3, 29, 0, 50, tzinfo=UTC), "Europe/Madrid", ("1:50", "1:58", "3:02")),
    ],
)
def test_windows_are_utc_durations_across_a_dst_change(
    mailer: Dispatcher,
    smtp_server: SmtpServer,
    first: datetime,
    zone: str,
    local_times: tuple[str, str, str],
) -> None:
    d = mailer
    d.subscribers.upsert("ana", email="ana@example.com", timezone=zone, locale="en")
    for minutes, by in ((0, "Luis"), (8, "Marta"), (12, "Pablo")):
        update(d, "ana", by, first + timedelta(minutes=minutes))
    closes = first + WINDOW
    assert windows(d)[0].closes_at == closes
    assert flush(d, closes - timedelta(microseconds=1))["due"] == 0
    assert flush(d, closes)["sent"] == 1
    text = text_of(smtp_server.to("ana@example.com")[0])
    positions = [text.index(f"{t} AM") for t in local_times]
    assert positions == sorted(positions), text


def test_a_window_whose_digest_is_skipped_is_dropped_and_the_next_one_opens(
    mailer: Dispatcher, smtp_server: SmtpServer
) -> None:
    d = mailer
    _three_updates(d)
    d.preferences.set("ana", type="ticket_updated", channel="email", enabled=False)
    assert flush(d, T0 + WINDOW) == {"due": 1, "dropped": 1, "skipped": 1}
    carrier = by_channel(d, "ana")["email"][0]
    assert (carrier.status, carrier.reason) == (DeliveryStatus.SKIPPED, Reason.OPTED_OUT)
    assert [w.status for w in windows(d)] == ["dropped"]
    d.preferences.set("ana", type="ticket_updated", channel="email", enabled=True)
    later = T0 + WINDOW + timedelta(minutes=1)
    update(d, "ana", "Rosa", later)
    assert [w.status for w in windows(d)] == ["dropped", "open"]
    assert flush(d, later + WINDOW)["sent"] == 1
    [message] = smtp_server.to("ana@example.com")
    assert "Rosa changed" in text_of(message) and "Luis" not in text_of(message)


def test_quiet_hours_hold_the_digest_and_the_window_keeps_gathering(
    mailer: Dispatcher, smtp_server: SmtpServer
) -> None:
    d = mailer
    _three_updates(d)  # Madrid: 13:00-13:09
    d.quiet_hours.set("ana", [("13:10", "14:00")])
    assert flush(d, T0 + WINDOW)["scheduled"] == 1  # deferred to 14:00 Madrid, 13:00 UTC
    assert windows(d)[0].status == "open"
    assert flush(d, T0 + WINDOW + timedelta(minutes=1))["due"] == 0  # held, not due
    update(d, "ana", "Rosa", T0 + timedelta(minutes=30))  # quiet too: deferred to 14:00
    carrier, *_, rosa = by_channel(d, "ana")["email"]
    assert (rosa.status, rosa.reason) == (DeliveryStatus.SCHEDULED, Reason.QUIET_HOURS)
    end = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    with at(end):  # the sweep releases both at 14:00 Madrid; a worker takes them together
        runtime(d).deliver([carrier.id, rosa.id])
    assert windows(d)[0].item_count == 4
    [message] = smtp_server.to("ana@example.com")
    assert message.parse()["subject"] == "4 ticket updates: Copa del Rey Final"
    assert "Rosa changed" in text_of(message)


def test_a_type_without_its_own_digest_templates_gets_the_generic_ones(
    mailer: Dispatcher, smtp_server: SmtpServer
) -> None:
    from dataclasses import replace

    d = mailer
    cancelled = d.catalog.get("ticket_cancelled")
    d.catalog.register(replace(cancelled, digest={"email": WINDOW}), replace=True)
    d.subscribers.upsert("eva", email="eva@example.com", locale="es", timezone="Europe/Madrid")
    data = dict(cancelled.example)
    for minute in (0, 5):
        with at(T0 + timedelta(minutes=minute)):
            receipt = d.notify("ticket_cancelled", to="eva", data=data, priority="medium")
            runtime(d).fanout(receipt.id)
            runtime(d).deliver([r.id for r in by_channel(d, "eva")["email"][-1:]])
    assert flush(d, T0 + WINDOW)["sent"] == 1
    [message] = smtp_server.to("eva@example.com")
    assert message.parse()["subject"] == "2 novedades: ticket cancelled"
    text = text_of(message)
    assert "2 novedades desde las 13:00" in text and "13:05 ticket cancelled" in text


def test_the_generic_web_push_digest_renders(mailer: Dispatcher) -> None:
    when = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    items = [{"type": "ticket_updated", "data": {}, "created_at": when, "notification_id": 1}]
    context = {
        "recipient": {"locale": "en", "timezone": "UTC"},
        "items": items * 4,
        "digest": {"count": 4, "window_id": 1, "opened_at": when, "closes_at": when},
    }
    parts = mailer.renderer.render("_digest", "web_push", ("title", "body", "url"), "en", context)
    assert parts["title"] == "4 updates"
    assert parts["body"].count("ticket updated") == 3
