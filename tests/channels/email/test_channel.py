"""The email channel against a real SMTP server, run in-process on SQLite and PostgreSQL.

The dispatcher here rings its doorbell on an in-memory broker nobody consumes, so only
these tests' ``run_fanout``/``run_deliver``/``run_sweep`` calls move the rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select, text, update

from dispatcher import DeliveryStatus, Dispatcher, InvalidAddressError, NotFoundError, Reason
from dispatcher.channels.email.channel import EmailChannel
from dispatcher.clock import utcnow
from dispatcher.db.models import Delivery
from dispatcher.settings import SmtpSettings
from tests.conftest import make_settings, runtime
from tests.smtp_server import (  # noqa: F401 - fixtures
    DROP,
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

TICKET = {
    "ticket_id": 123,
    "event_name": "Copa del Rey — Final ñ",
    "seller": "Luis Muñoz <b>",
    "amount": "45.00",
    "currency": "EUR",
    "quantity": 2,
}


@pytest.fixture
def make_mailer(dispatcher: Dispatcher, smtp_server: SmtpServer) -> Iterator[Any]:
    made: list[Dispatcher] = []

    def make(**smtp: Any) -> Dispatcher:
        values: dict[str, Any] = {
            "from_address": "Notificações Dispatcher <noreply@example.com>",
            "backoff_base_seconds": 0.05,
            "backoff_cap_seconds": 0.1,
            "pool_size": 2,
            **smtp,
        }
        d = Dispatcher(
            make_settings(
                dispatcher.settings.database_url,
                broker_url=dispatcher.settings.broker_url,
                public_url="https://app.example.com",
                smtp=SmtpSettings(**smtp_server.settings(**values)),
            )
        )
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def email_rows(d: Dispatcher) -> list[Delivery]:
    with d.store.session() as s:
        return list(
            s.scalars(select(Delivery).where(Delivery.channel == "email").order_by(Delivery.id))
        )


def deliver_event(d: Dispatcher, type: str, to: list[str], data: dict[str, Any]) -> list[Delivery]:
    receipt = d.notify(type, to=to, data=data)
    runtime(d).fanout(receipt.id)
    # Every channel's rows, so none is left pending for a later sweep to count.
    with d.store.session() as s:
        ids = list(s.scalars(select(Delivery.id).where(Delivery.status == DeliveryStatus.PENDING)))
    runtime(d).deliver(ids)
    return email_rows(d)


def test_seed_event_becomes_a_proper_email(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer()
    d.subscribers.upsert("u1", email="ana@example.com", locale="es")
    [row] = deliver_event(d, "ticket_created", ["u1"], TICKET)
    assert row.status is DeliveryStatus.SENT, row.detail
    [received] = smtp_server.to("ana@example.com")
    assert received.mail_from == "noreply@example.com"
    msg: EmailMessage = received.parse()

    assert msg["Subject"] == "Entrada vendida: Copa del Rey — Final ñ"
    raw_head = received.data.split(b"\r\n\r\n")[0]
    assert b"=?utf-8?" in raw_head and "ñ".encode() not in raw_head
    assert msg["From"].addresses[0].display_name == "Notificações Dispatcher"
    assert msg["To"].addresses[0].addr_spec == "ana@example.com"
    assert abs((msg["Date"].datetime - utcnow()).total_seconds()) < 60
    assert msg["Message-ID"] == row.provider_id
    assert msg["Message-ID"].startswith(f"<{row.id}.") and msg["Message-ID"].endswith(
        "@example.com>"
    )
    assert row.detail is not None and row.detail.startswith("250 ") and "queued as" in row.detail

    assert msg.get_content_type() == "multipart/alternative"
    plain, html = msg.iter_parts()
    assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    body, page = plain.get_content(), html.get_content()
    assert "Luis Muñoz <b> vendió 2 entradas" in body  # text is not escaped
    assert "Luis Muñoz &lt;b&gt; vendió 2 entradas" in page  # HTML is
    assert "Muñoz <b>" not in page
    assert "Recibes este correo" in page and "https://app.example.com/preferences" in page

    link = msg["List-Unsubscribe"].strip("<>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link.startswith("https://app.example.com/unsubscribe?token=")
    assert link in body and link in page  # the same link in header, text and HTML

    # Following the link (what the gateway's POST does) turns this type's email off.
    token = parse_qs(urlsplit(link).query)["token"][0]
    request, _ = d.unsubscribe(token)
    assert (request.subscriber_id, request.type, request.channel) == (
        "u1",
        "ticket_created",
        "email",
    )
    assert not d.preferences.matrix("u1")["ticket_created"]["email"].enabled
    assert d.preferences.matrix("u1")["ticket_cancelled"]["email"].enabled


def test_critical_alert_has_no_unsubscribe(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer()
    d.subscribers.upsert("ops", email="ops@example.com")
    data = dict(d.catalog.get("system_alert").example)
    [row] = deliver_event(d, "system_alert", ["ops"], data)
    assert row.status is DeliveryStatus.SENT
    msg = smtp_server.to("ops@example.com")[0].parse()
    assert msg["Subject"] == "[CRITICAL] Payments are failing"
    assert msg["List-Unsubscribe"] is None
    plain, html = msg.iter_parts()
    assert "cannot be turned off" in plain.get_content()
    assert "unsubscribe" not in html.get_content().lower()


def test_each_email_seed_type_renders_in_both_locales(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer()
    d.subscribers.upsert("en", email="en@example.com", locale="en")
    d.subscribers.upsert("es", email="es@example.com", locale="es-MX")
    expected = {
        "ticket_created": ("Ticket sold:", "Entrada vendida:"),
        "ticket_cancelled": ("Ticket #123 cancelled", "Entrada #123 cancelada"),
        "report_generated": ("Report ready:", "Informe listo:"),
        "system_alert": ("[CRITICAL]", "[CRITICAL]"),
    }
    for name in expected:
        deliver_event(d, name, ["en", "es"], dict(d.catalog.get(name).example))
    assert all(r.status is DeliveryStatus.SENT for r in email_rows(d))
    en = [m.parse()["Subject"] for m in smtp_server.to("en@example.com")]
    es = [m.parse()["Subject"] for m in smtp_server.to("es@example.com")]
    assert [s.startswith(e[0]) for s, e in zip(en, expected.values(), strict=True)] == [True] * 4
    assert [s.startswith(e[1]) for s, e in zip(es, expected.values(), strict=True)] == [True] * 4


def test_message_id_is_the_same_on_a_resend(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer()
    d.subscribers.upsert("u1", email="ana@example.com")
    [row] = deliver_event(d, "ticket_created", ["u1"], TICKET)
    with d.store.session() as s:  # as if the worker crashed after sending
        s.execute(
            update(Delivery).where(Delivery.id == row.id).values(status=DeliveryStatus.PENDING)
        )
    runtime(d).deliver([row.id])
    first, second = smtp_server.to("ana@example.com")
    assert first.parse()["Message-ID"] == second.parse()["Message-ID"] == row.provider_id


@pytest.mark.parametrize(
    ("reply", "stage", "status", "reason", "shown"),
    [
        ("450 4.2.1 mailbox busy", "rcpt", DeliveryStatus.SCHEDULED, Reason.RETRYING, "450"),
        ("451 4.3.0 try again later", "data", DeliveryStatus.SCHEDULED, Reason.RETRYING, "451"),
        ("421 4.7.0 closing", "rcpt", DeliveryStatus.SCHEDULED, Reason.RETRYING, "421"),
        (DROP, "rcpt", DeliveryStatus.SCHEDULED, Reason.RETRYING, "unavailable"),
        (DROP, "data", DeliveryStatus.SCHEDULED, Reason.RETRYING, "unavailable"),
        ("550 5.1.1 no such user", "rcpt", DeliveryStatus.FAILED, Reason.REJECTED, "550 5.1.1"),
        ("554 5.7.1 message refused", "data", DeliveryStatus.FAILED, Reason.REJECTED, "554 5.7.1"),
    ],
    ids=["450-rcpt", "451-data", "421-rcpt", "drop-rcpt", "drop-data", "550-rcpt", "554-data"],
)
def test_smtp_replies_are_classified_and_do_not_fail_the_others(  # type: ignore[no-untyped-def]
    make_mailer, smtp_server: SmtpServer, reply, stage, status, reason, shown
) -> None:
    d = make_mailer(pool_size=1)  # one connection: the others go after the failure on it
    for name in ("a", "bad", "c", "d"):
        d.subscribers.upsert(name, email=f"{name}@example.com")
    smtp_server.fail("bad@example.com", reply, stage=stage)
    before = utcnow()
    rows = {r.id: r for r in deliver_event(d, "ticket_created", ["a", "bad", "c", "d"], TICKET)}
    by_address = {}
    with d.store.session() as s:
        for rid, email in s.execute(
            text(
                "SELECT d.id, s.email FROM deliveries d"
                " JOIN notifications n ON n.id = d.notification_id"
                " JOIN subscribers s ON s.id = n.subscriber_id WHERE d.channel = 'email'"
            )
        ):
            by_address[email] = rows[rid]
    bad = by_address.pop("bad@example.com")
    assert bad.status is status
    assert bad.reason == reason
    assert shown in (bad.detail or "")
    assert bad.attempts == 1
    if status is DeliveryStatus.SCHEDULED:
        assert bad.scheduled_for is not None and bad.scheduled_for > before
    assert all(r.status is DeliveryStatus.SENT for r in by_address.values())
    assert sorted(a for m in smtp_server.messages for a in m.rcpt_tos) == [
        "a@example.com",
        "c@example.com",
        "d@example.com",
    ]


def test_a_refused_message_is_retried_and_then_sent_once(
    make_mailer, smtp_server: SmtpServer
) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer()
    d.subscribers.upsert("u1", email="ana@example.com")
    smtp_server.fail("ana@example.com", "451 4.3.0 later", stage="data", times=2)
    [row] = deliver_event(d, "ticket_created", ["u1"], TICKET)
    for _ in range(2):
        time.sleep(0.15)
        runtime(d).sweep()
        runtime(d).deliver([row.id])
    [row] = email_rows(d)
    assert row.status is DeliveryStatus.SENT and row.attempts == 3
    assert len(smtp_server.to("ana@example.com")) == 1


def test_retries_run_out(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer(max_attempts=2)
    d.subscribers.upsert("u1", email="ana@example.com")
    smtp_server.fail("ana@example.com", "450 4.2.1 busy")
    [row] = deliver_event(d, "ticket_created", ["u1"], TICKET)
    time.sleep(0.15)
    runtime(d).deliver([row.id])
    [row] = email_rows(d)
    assert row.status is DeliveryStatus.FAILED and row.reason == Reason.RETRIES_EXHAUSTED
    assert "450" in (row.detail or "")


def test_invalid_stored_address_fails_permanently(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer()
    d.subscribers.upsert("ok", email="ok@example.com")
    d.subscribers.upsert("broken", email="broken@example.com")
    with d.store.session() as s:  # written around the validation, e.g. by an old version
        s.execute(
            text("UPDATE subscribers SET email = :e WHERE external_id = 'broken'"),
            {"e": "alice@example.org)<bob@example.org>"},
        )
    rows = deliver_event(d, "ticket_created", ["ok", "broken"], TICKET)
    assert sorted((r.status.value, r.reason) for r in rows) == [
        ("failed", Reason.INVALID_ADDRESS),
        ("sent", None),
    ]
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ok@example.com"]]


@pytest.mark.parametrize(
    "address", ["alice@example.org)<bob@example.org>", "ana@example.com\r\nBcc: x@example.com"]
)
def test_invalid_address_is_refused_when_a_subscriber_is_saved(
    dispatcher: Dispatcher, address: str
) -> None:
    with pytest.raises(InvalidAddressError):
        dispatcher.subscribers.upsert("u1", email=address)
    with pytest.raises(NotFoundError):
        dispatcher.subscribers.get("u1")


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\u2028", "\x85"])
def test_line_break_in_payload_subject_is_rejected(
    make_mailer, smtp_server: SmtpServer, breaker: str
) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer()
    d.subscribers.upsert("u1", email="ana@example.com")
    data = {**TICKET, "event_name": f"Final{breaker}Bcc: victim@example.com"}
    [row] = deliver_event(d, "ticket_created", ["u1"], data)
    assert row.status is DeliveryStatus.FAILED
    assert row.reason == "header_injection"
    assert "Subject contains the control character" in (row.detail or "")
    assert smtp_server.messages == []


def test_no_email_address_is_skipped(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer()
    d.subscribers.upsert("u1")
    [row] = deliver_event(d, "ticket_created", ["u1"], TICKET)
    assert row.status is DeliveryStatus.SKIPPED and row.reason == Reason.NO_ADDRESS


def test_smtp_down_then_back_sends_everything_once(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer()
    people = [f"p{i}" for i in range(6)]
    for p in people:
        d.subscribers.upsert(p, email=f"{p}@example.com")
    smtp_server.stop()
    rows = deliver_event(d, "ticket_created", people, TICKET)
    assert {r.status for r in rows} == {DeliveryStatus.SCHEDULED}
    assert all("smtp_unavailable" in (r.detail or "") for r in rows)
    time.sleep(0.15)
    runtime(d).sweep()  # still down: released, tried, piled up again
    runtime(d).deliver([r.id for r in rows])
    assert {r.status for r in email_rows(d)} == {DeliveryStatus.SCHEDULED}
    assert {r.attempts for r in email_rows(d)} == {2}

    smtp_server.start()
    time.sleep(0.15)
    assert runtime(d).sweep().deliveries == len(people)
    runtime(d).deliver([r.id for r in rows])
    runtime(d).deliver([r.id for r in rows])  # a duplicated doorbell changes nothing
    assert {r.status for r in email_rows(d)} == {DeliveryStatus.SENT}
    assert sorted(a for m in smtp_server.messages for a in m.rcpt_tos) == sorted(
        f"{p}@example.com" for p in people
    )
    time.sleep(0.15)
    assert runtime(d).sweep().deliveries == 0


def test_connections_are_reused_across_batches(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer(pool_size=2)
    for i in range(10):
        d.subscribers.upsert(f"p{i}", email=f"p{i}@example.com")
    for _ in range(3):
        deliver_event(d, "ticket_created", [f"p{i}" for i in range(10)], TICKET)
    assert len(smtp_server.messages) == 30
    assert smtp_server.recorder.connections <= 2
    channel = d.channels.get("email")
    assert isinstance(channel, EmailChannel) and channel.pool.connected == 2


def test_starttls_is_required_when_asked_for(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer(security="starttls")  # the test server offers no STARTTLS
    d.subscribers.upsert("u1", email="ana@example.com")
    [row] = deliver_event(d, "ticket_created", ["u1"], TICKET)
    assert row.status is DeliveryStatus.SCHEDULED
    assert "smtp_unavailable" in (row.detail or "")
    assert smtp_server.messages == []  # never fell back to plaintext


def test_channel_settings_drive_retry_policy_and_configuration(dispatcher: Dispatcher) -> None:
    settings = make_settings(
        dispatcher.settings.database_url,
        smtp=SmtpSettings(
            host=None, max_attempts=3, backoff_base_seconds=5, backoff_cap_seconds=60
        ),
    )
    from dispatcher.channels.base import ChannelContext

    channel = EmailChannel(ChannelContext(settings, dispatcher.store))
    assert not channel.is_configured()
    assert (channel.retry_policy.max_attempts, channel.retry_policy.cap_seconds) == (3, 60)


def test_unconfigured_email_is_skipped(dispatcher: Dispatcher) -> None:
    d = Dispatcher(
        make_settings(dispatcher.settings.database_url, broker_url=dispatcher.settings.broker_url)
    )
    try:
        d.subscribers.upsert("u1", email="ana@example.com")
        [row] = deliver_event(d, "ticket_created", ["u1"], TICKET)
        assert row.status is DeliveryStatus.SKIPPED
        assert row.reason == Reason.CHANNEL_NOT_CONFIGURED
    finally:
        d.close()


def test_retry_backoff_lands_in_scheduled_for(make_mailer, smtp_server: SmtpServer) -> None:  # type: ignore[no-untyped-def]
    d = make_mailer(backoff_base_seconds=60, backoff_cap_seconds=600)
    d.subscribers.upsert("u1", email="ana@example.com")
    smtp_server.fail("ana@example.com", "450 4.2.1 busy")
    before = utcnow()
    [row] = deliver_event(d, "ticket_created", ["u1"], TICKET)
    assert row.scheduled_for is not None
    delay = row.scheduled_for - before
    assert timedelta(seconds=30) <= delay <= timedelta(seconds=61)  # equal jitter of 60 s


def test_pool_reconnects_after_the_server_dropped_idle_connections(  # type: ignore[no-untyped-def]
    make_mailer, smtp_server: SmtpServer
) -> None:
    d = make_mailer(pool_size=2)
    for i in range(4):
        d.subscribers.upsert(f"p{i}", email=f"p{i}@example.com")
    deliver_event(d, "ticket_created", [f"p{i}" for i in range(4)], TICKET)
    smtp_server.stop()  # closes every connection the pool holds
    smtp_server.start()
    rows = deliver_event(d, "ticket_created", [f"p{i}" for i in range(4)], TICKET)
    assert {r.status for r in rows} == {DeliveryStatus.SENT}
    assert [r.attempts for r in rows] == [1] * 8  # nothing needed a retry
    assert sorted(a for m in smtp_server.messages for a in m.rcpt_tos) == sorted(
        [f"p{i}@example.com" for i in range(4)] * 2
    )


def test_a_connection_dropped_before_data_is_retried_at_once_on_a_new_one(  # type: ignore[no-untyped-def]
    make_mailer, smtp_server: SmtpServer
) -> None:
    d = make_mailer(pool_size=1)
    d.subscribers.upsert("warm", email="warm@example.com")
    d.subscribers.upsert("u1", email="ana@example.com")
    deliver_event(d, "ticket_created", ["warm"], TICKET)  # the pool's connection is now open
    smtp_server.fail("ana@example.com", DROP, stage="rcpt", times=1)
    [_, row] = deliver_event(d, "ticket_created", ["u1"], TICKET)
    assert row.status is DeliveryStatus.SENT and row.attempts == 1
    assert len(smtp_server.to("ana@example.com")) == 1
