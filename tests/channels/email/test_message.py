"""Building email bytes: encodings, structure, and header injection (pure functions)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.channels.email.message import (
    EmailComposer,
    check_header_value,
    message_id_for,
    parse_mailbox,
)
from dispatcher.errors import ConfigurationError, HeaderInjectionError, InvalidAddressError

NOW = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)


def composer(sender: str = "Notificações Dispatcher <noreply@example.com>") -> EmailComposer:
    mailbox = parse_mailbox(sender, setting="DISPATCHER_SMTP_FROM_ADDRESS")
    reply_to = parse_mailbox("Soporte <help@example.com>", setting="DISPATCHER_SMTP_REPLY_TO")
    return EmailComposer(mailbox, reply_to=reply_to, message_id_domain="mail.example.com")


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def compose(subject: str = "Hello", text: str = "text", html: str = "<p>html</p>", **kw):  # type: ignore[no-untyped-def]
    values = {
        "to": "ana@example.com",
        "subject": subject,
        "text": text,
        "html": html,
        "message_id": "<7.1700000000.dispatcher@mail.example.com>",
        "date": NOW,
        "unsubscribe_url": "https://app.example.com/unsubscribe?token=a.b-c_d",
    }
    values.update(kw)
    return composer().compose(**values)


def test_message_is_multipart_alternative_with_text_then_html() -> None:
    raw = compose(subject="Entrada vendida: Copa — Final ñ", text="Hola ñ\nadiós", html="<p>é</p>")
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert text.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
    assert text.get_payload(decode=True) == "Hola ñ\r\nadiós".encode()
    assert html.get_content() == "<p>é</p>"
    assert msg["Subject"] == "Entrada vendida: Copa — Final ñ"
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n")[0]  # encoded word, not raw UTF-8
    assert msg["From"].addresses[0].display_name == "Notificações Dispatcher"
    assert msg["From"].addresses[0].addr_spec == "noreply@example.com"
    assert msg["Reply-To"].addresses[0].addr_spec == "help@example.com"
    assert msg["To"].addresses[0].addr_spec == "ana@example.com"
    assert msg["Message-ID"] == "<7.1700000000.dispatcher@mail.example.com>"
    assert msg["Date"].datetime == NOW
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["MIME-Version"] == "1.0"
    assert msg["List-Unsubscribe"] == "<https://app.example.com/unsubscribe?token=a.b-c_d>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_without_unsubscribe_url_there_are_no_list_headers() -> None:
    msg = parse(compose(unsubscribe_url=None))
    assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None


def test_long_subject_is_folded_and_reads_back_whole() -> None:
    subject = "Ticket sold: " + "very long event name " * 12
    raw = compose(subject=subject.strip())
    head = raw.split(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if line.startswith(b"Subject"))
    assert parse(raw)["Subject"] == subject.strip()


def test_idn_recipient_domain_goes_out_as_punycode() -> None:
    msg = parse(compose(to="ana@bücher.example"))
    assert msg["To"].addresses[0].addr_spec == "ana@xn--bcher-kva.example"


@pytest.mark.parametrize(
    "subject",
    [
        "Hi\r\nBcc: evil@example.com",
        "Hi\nBcc: evil@example.com",
        "Hi\rBcc: evil@example.com",
        "Hi\u2028Bcc: evil@example.com",
        "Hi\u2029there",
        "Hi\x85there",
        "Hi\x0bthere",
        "Hi\x00there",
    ],
)
def test_line_breaks_in_a_subject_are_rejected(subject: str) -> None:
    with pytest.raises(HeaderInjectionError, match="Subject contains the control character"):
        compose(subject=subject)


def test_tab_is_allowed_in_a_header() -> None:
    assert check_header_value("Subject", "a\tb") == "a\tb"


@pytest.mark.parametrize(
    "address",
    ["ana@example.com\r\nBcc: x@example.com", "alice@example.org)<bob@example.org>", "nope", ""],
)
def test_bad_recipient_is_rejected(address: str) -> None:
    with pytest.raises(InvalidAddressError):
        compose(to=address)


@pytest.mark.parametrize(
    "value",
    [
        "Evil\r\nBcc: x@example.com <a@example.com>",
        "Evil\u2028Name <a@example.com>",
        "a@example.com, b@example.com",
        "Name <not-an-address>",
        "<a@example.com",
    ],
)
def test_bad_from_setting_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match="DISPATCHER_SMTP_FROM_ADDRESS"):
        parse_mailbox(value, setting="DISPATCHER_SMTP_FROM_ADDRESS")


def test_quoted_display_name_and_bare_address_parse() -> None:
    assert parse_mailbox('"Ops, Team" <ops@example.com>', setting="X").display_name == "Ops, Team"
    assert parse_mailbox("ops@example.com", setting="X").addr_spec == "ops@example.com"


def test_display_name_with_specials_is_quoted_on_the_wire() -> None:
    c = EmailComposer(
        parse_mailbox('"Ops, Team" <ops@example.com>', setting="X"), message_id_domain="ex.com"
    )
    raw = c.compose(
        to="a@example.com", subject="s", text="t", html="h", message_id="<1.2.d@ex.com>", date=NOW
    )
    from_ = parse(raw)["From"].addresses
    assert len(from_) == 1 and from_[0].display_name == "Ops, Team"


def test_message_id_is_a_function_of_the_delivery() -> None:
    created = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    first = message_id_for(42, created, "mail.example.com")
    assert first == message_id_for(42, created, "mail.example.com")
    assert first != message_id_for(43, created, "mail.example.com")
    assert first.startswith("<42.") and first.endswith("@mail.example.com>")


def test_bad_message_id_domain_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="MESSAGE_ID_DOMAIN"):
        EmailComposer(parse_mailbox("a@example.com", setting="X"), message_id_domain="a b>")


def test_unsubscribe_url_must_be_plain_http() -> None:
    with pytest.raises(ValueError, match="unsubscribe URL"):
        compose(unsubscribe_url="https://x.example.com/u?t=a\r\nBcc: y")
    with pytest.raises(ValueError, match="unsubscribe URL"):
        compose(unsubscribe_url="javascript:alert(1)")


def crlf(text: str) -> str:
    return re.sub(r"\r\n|\r|\n", "\r\n", text)


_header_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=200
)


@settings(max_examples=300, deadline=None)
@given(subject=_header_text, text=st.text(max_size=500), html=st.text(max_size=500))
def test_any_subject_and_bodies_read_back_unchanged(subject: str, text: str, html: str) -> None:
    msg = parse(compose(subject=subject, text=text, html=html))
    # The header parser folds runs of whitespace; compare what a reader sees.
    assert " ".join(str(msg["Subject"]).split()) == " ".join(subject.split())
    plain, rich = msg.iter_parts()
    assert plain.get_payload(decode=True) == crlf(text).encode("utf-8")
    assert rich.get_payload(decode=True) == crlf(html).encode("utf-8")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert len(msg.get_all("Subject") or []) == 1
