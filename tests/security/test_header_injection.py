"""Item 1: email header injection through RFC 2047 encoded words in payload text.

Payload text is text: ``=?utf-8?q?…=0D=0A…?=`` in a title must arrive as those literal
characters in the subject, never as a decoded line break that starts a new header or
ends the header block. Checked on the composed bytes (pure functions, hypothesis) and
through a real SMTP server on SQLite and PostgreSQL, where ``tests/smtp_server.py``
also refuses any message whose headers are not exactly the ones we write.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dispatcher import DeliveryStatus, Dispatcher, HeaderInjectionError
from dispatcher.channels.email.message import EmailComposer, parse_mailbox
from dispatcher.db.models import Delivery
from dispatcher.settings import SmtpSettings
from tests.conftest import make_settings, runtime
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    message_violations,
    smtp_server_fixture,
    smtp_server_session,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

#: The issue's reproductions: a q word adding Bcc, one adding Reply-To, a b word whose
#: CRLF CRLF ends the header block so the rest becomes the body.
ATTACKS = [
    "=?utf-8?q?Hi=0D=0ABcc:_x@example.com?=",
    "=?utf-8?q?Hi=0D=0AReply-To:_billing@attacker.example?=",
    "X =?utf-8?b?SGkNCg0KZXZpbCBib2R5?=",
    "=?UTF-8?Q?a=0ABcc:_x@example.com?= =?utf-8?b?DQpCY2M6IHlAZXhhbXBsZS5jb20=?=",
    "=?iso-8859-1?q?=0D=0ABcc:_x@example.com?=",
    "=?utf-8?b?DQoNCg==?=",
]


def composer() -> EmailComposer:
    sender = parse_mailbox("Dispatcher <noreply@example.com>", setting="FROM")
    reply_to = parse_mailbox("Help <help@example.com>", setting="REPLY_TO")
    return EmailComposer(sender, reply_to=reply_to, message_id_domain="example.com")


def compose(subject: str) -> bytes:
    return composer().compose(
        to="ana@example.com",
        subject=subject,
        text="the text body",
        html="<p>the html body</p>",
        message_id="<1.2.dispatcher@example.com>",
        date=NOW,
        unsubscribe_url="https://app.example.com/unsubscribe?token=t",
    )


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def assert_only_our_headers(raw: bytes, subject: str) -> None:
    assert message_violations("noreply@example.com", ["ana@example.com"], raw) == []
    message = parse(raw)
    assert message["Subject"] == subject
    assert message["Reply-To"].addresses[0].addr_spec == "help@example.com"
    text, html = message.iter_parts()
    assert text.get_content() == "the text body"
    assert html.get_content() == "<p>the html body</p>"
    head = raw.split(b"\r\n\r\n", 1)[0]
    # Every line is a header or a continuation: no line a parser could read as another.
    for line in head.split(b"\r\n"):
        assert line.startswith(b" ") or re.match(rb"[A-Za-z-]+: ", line), line


@pytest.mark.parametrize("title", ATTACKS)
def test_encoded_words_in_the_subject_stay_literal_text(title: str) -> None:
    raw = compose(f"[INFO] {title}")
    assert_only_our_headers(raw, f"[INFO] {title}")
    assert b"Bcc" not in raw.split(b"\r\n\r\n", 1)[0]


def test_the_issues_body_smuggling_subject_is_one_header_line() -> None:
    from dispatcher.channels.email.message import _subject_line

    line = _subject_line("X =?utf-8?b?SGkNCg0KZXZpbCBib2R5?=")
    assert b"\r\n\r\n" not in line and b"evil body" not in line
    assert line.count(b"\r\n") == 1 + line.count(b"\r\n ")


@pytest.mark.parametrize(
    "subject",
    [
        "Hello",
        "Ticket sold: " + "very long event name " * 12 + "end",
        "a  b",  # two spaces survive folding
        " leading and trailing ",
        "x" * 3000,  # no space to fold at: encoded words
        "Entrada vendida: Copa — Final ñ 🎫",
        "=?",
        "?=",
        "100% =?= done",
    ],
)
def test_ordinary_and_odd_subjects_read_back_exactly(subject: str) -> None:
    raw = compose(subject)
    assert_only_our_headers(raw, subject)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


#: Text a hostile payload might carry: encoded-word syntax, CR/LF, controls, bidi, NUL.
hostile_text = st.lists(
    st.sampled_from(
        [
            *"=?qQbB_:-@ aZ09<>\"'\t",
            *["\r", "\n", "\x00", "\x0b", "\x85", "\u2028", "\u202e", "ñ", "€", "🎫"],
            *["=?utf-8?q?", "=?utf-8?b?", "?=", "=0D=0A", "DQoNCg==", "Bcc: x@example.com"],
        ]
    )
    | st.characters(codec="utf-8"),
    max_size=60,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(hostile_text)
@example("=?utf-8?q?Hi=0D=0ABcc:_x@example.com?=")
def test_any_subject_is_refused_or_arrives_exactly(subject: str) -> None:
    try:
        raw = compose(subject)
    except HeaderInjectionError as exc:
        assert "control character U+" in str(exc)
        assert re.search(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]", subject)
        return
    assert_only_our_headers(raw, subject)


def test_the_refusal_does_not_echo_the_subject() -> None:
    with pytest.raises(HeaderInjectionError) as caught:
        compose("secret-order-42\r\nBcc: x@example.com")
    assert "secret-order-42" not in str(caught.value) and "Bcc" not in str(caught.value)
    assert "U+000D at position 15" in str(caught.value)


@pytest.fixture
def mailer(dispatcher: Dispatcher, smtp_server: SmtpServer) -> Iterator[Dispatcher]:
    d = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            broker_url=dispatcher.settings.broker_url,
            public_url="https://app.example.com",
            smtp=SmtpSettings(
                **smtp_server.settings(from_address="Dispatcher <noreply@example.com>")
            ),
        )
    )
    yield d
    d.close()


def deliver(d: Dispatcher, type: str, data: dict[str, Any]) -> Delivery:
    receipt = d.notify(type, to=["alice"], data=data)
    runtime(d).fanout(receipt.id)
    with d.store.session() as s:
        ids = list(s.scalars(select(Delivery.id).where(Delivery.status == "pending")))
    runtime(d).deliver(ids)
    with d.store.session() as s:
        return s.scalars(select(Delivery).where(Delivery.channel == "email")).one()


@pytest.mark.parametrize(
    ("type", "field", "subject"),
    [
        ("system_alert", "title", "[INFO] {}"),
        ("ticket_created", "event_name", "Ticket sold: {}"),
        ("ticket_cancelled", "event_name", "Ticket #123 cancelled: {}"),
    ],
)
@pytest.mark.parametrize("attack", ATTACKS[:3])
def test_payload_fields_cannot_add_headers_through_a_real_smtp_server(
    mailer: Dispatcher, smtp_server: SmtpServer, type: str, field: str, subject: str, attack: str
) -> None:
    mailer.subscribers.upsert("alice", email="alice@example.com")
    data = dict(mailer.catalog.get(type).example)
    data[field] = attack
    if type == "system_alert":
        data["severity"] = "info"
    row = deliver(mailer, type, data)
    assert row.status is DeliveryStatus.SENT, row.detail
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["alice@example.com"]
    message = received.parse()
    assert message["Subject"] == subject.format(attack)
    assert message["Bcc"] is None and "attacker" not in str(message["Reply-To"])
    assert b"evil body" not in received.data.split(b"\r\n\r\n", 1)[0]


def test_a_refused_subject_is_logged_and_recorded_by_id_and_reason_only(
    mailer: Dispatcher, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 8: the log line and the stored detail name the delivery and the reason,
    never the subject's text."""
    mailer.subscribers.upsert("alice", email="alice@example.com")
    data = dict(mailer.catalog.get("system_alert").example)
    data["title"] = "secret-order-42\u2028Bcc: x@example.com"
    with caplog.at_level(logging.INFO, logger="dispatcher"):
        row = deliver(mailer, "system_alert", data)
    assert row.status is DeliveryStatus.FAILED
    assert row.reason == "header_injection"
    assert smtp_server.messages == []
    logged = [r.getMessage() for r in caplog.records if "email." in r.getMessage()]
    rejected = [line for line in logged if "email.header_rejected" in line]
    assert rejected and f"delivery_id={row.id}" in rejected[0]
    assert not [line for line in logged if "secret-order-42" in line]
    assert "secret-order-42" not in (row.detail or "")
