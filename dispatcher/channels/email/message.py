"""Building the bytes of one notification email.

Every message is ``multipart/alternative`` (plain text, then HTML), UTF-8, with
``Message-ID`` derived from the delivery (the same on every resend), ``Date``,
``Auto-Submitted`` and, for types a subscriber can opt out of, RFC 8058 one-click
``List-Unsubscribe`` headers.

Header values never reach the message by string concatenation unchecked:

* the headers that are the same for every message (From, Reply-To, ...) are built once
  by :class:`email.message.EmailMessage` with :class:`email.headerregistry.Address`;
* ``Subject`` is checked for line breaks and control characters (a
  :class:`~dispatcher.errors.HeaderInjectionError` otherwise), then written by us: short
  printable ASCII as it is (folded at spaces), anything else as RFC 2047 encoded words
  we encode ourselves, so ``=?…?=`` in payload text stays literal text. The finished
  line is checked once more: one header, printable ASCII, folded only by CRLF + space,
  reading back as the subject it was made from;
* ``To`` is an address :func:`~dispatcher.subscribers.addresses.validate_email` accepted (dot-atom
  local part, IDNA domain), ``Message-ID`` and ``Date`` are made of digits and a
  checked domain, and the unsubscribe URL is checked to be printable ASCII.

Why not ``EmailMessage`` for everything: it costs about 1.4 ms per message here (header
parsing and refolding), several times the cost of sending it; the bodies are base64
(C-speed ``binascii``) so no body line can ever look like a boundary or a header.
"""

from __future__ import annotations

import base64
import re
import secrets
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import lru_cache

from dispatcher.errors import ConfigurationError, HeaderInjectionError, InvalidAddressError
from dispatcher.subscribers.addresses import validate_email

#: Characters :meth:`str.splitlines` breaks on, plus the other C0/C1 controls.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_PLAIN_ASCII = re.compile(r"[\x20-\x7e]*")
_DOMAIN = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")
_URL = re.compile(r"https?://[\x21-\x3b\x3d\x3f-\x7e]+")
_MAILBOX = re.compile(r"\s*(?:(?P<name>[^<>]*?)\s*<(?P<addr>[^<>\s]+)>|(?P<bare>[^<>\s]+))\s*")
#: RFC 5322 line length limit, without CRLF.
_MAX_LINE = 998
_SMTP = policy.SMTP


def check_header_value(header: str, value: str) -> str:
    """Return ``value`` if it can go into ``header`` as it is, else raise.

    Raises:
        HeaderInjectionError: the value contains CR, LF, U+2028/U+2029, NEL or another
            control character (tabs are allowed), which could start a new header.
    """
    match = _FORBIDDEN.search(value)
    if match is not None:
        # The value itself stays out of the message: it ends up in logs and reasons.
        raise HeaderInjectionError(
            f"{header} contains the control character U+{ord(match.group()):04X} at "
            f"position {match.start()}; line breaks are not allowed in mail headers"
        )
    return value


def parse_mailbox(text: str, *, setting: str) -> Address:
    """Parse ``Name <local@domain>`` or ``local@domain`` from configuration.

    Raises:
        ConfigurationError: naming ``setting`` when the mailbox is not acceptable.
    """
    try:
        check_header_value(setting, text)
    except HeaderInjectionError as exc:
        raise ConfigurationError(f"{setting}: {exc}") from None
    match = _MAILBOX.fullmatch(text)
    if match is None:
        raise ConfigurationError(f"{setting}: expected 'Name <local@domain>', got {text!r}")
    name = (match.group("name") or "").strip().strip('"').strip()
    addr = match.group("addr") or match.group("bare") or ""
    try:
        addr = ascii_address(addr)
    except InvalidAddressError as exc:
        raise ConfigurationError(f"{setting}: {exc}") from None
    local, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=local, domain=domain)


def ascii_address(address: str) -> str:
    """Validate ``address`` and return it with its domain in IDNA (ASCII) form."""
    validate_email(address)
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def message_id_for(delivery_id: int, created_at: datetime, domain: str) -> str:
    """The ``Message-ID`` of a delivery: the same every time the delivery is sent, so a
    resend after a crash can be recognised as the same message downstream."""
    stamp = int(created_at.timestamp())
    return f"<{delivery_id}.{stamp}.dispatcher@{domain}>"


#: Raw UTF-8 bytes per encoded word: 42 bytes are 56 base64 characters, so a word is
#: 68 characters and "Subject: " plus one word stays within the 78 RFC 5322 recommends.
_WORD_BYTES = 42
_FOLD_WIDTH = 78
_SUBJECT_PREFIX = b"Subject: "


@lru_cache(maxsize=4096)
def _subject_line(subject: str) -> bytes:
    """The ``Subject`` header line, CRLF-terminated, for a subject taken as plain text.

    Text from payloads is text, never header syntax: anything that is not short-enough
    printable ASCII free of ``=?`` is written as RFC 2047 ``b`` encoded words that we
    encode ourselves. The standard library's header factory is never given the value,
    because it decodes encoded words already in the text, with their CR/LF (PITFALLS:
    "Encoded words are decoded when a header is folded").

    Raises:
        HeaderInjectionError: the subject contains a line break or control character, or
            the finished line fails the final check (see :func:`_check_header_line`).
    """
    check_header_value("Subject", subject)
    if _PLAIN_ASCII.fullmatch(subject) and "=?" not in subject and subject == subject.strip():
        line = _fold_plain(subject)
    else:
        line = _SUBJECT_PREFIX + b"\r\n ".join(_encoded_words(subject)) + b"\r\n"
    _check_header_line(line, subject)
    return line


def _fold_plain(subject: str) -> bytes:
    """Plain ASCII folded before spaces (unfolding only removes the CRLF, so every space
    survives); a word too long for any line makes the whole subject encoded words."""
    lines: list[str] = []
    current = "Subject:"
    for word in subject.split(" "):
        first_word = not lines and current == "Subject:"
        if first_word or len(current) + 1 + len(word) <= _FOLD_WIDTH:
            current = f"{current} {word}"
        elif word:
            lines.append(current)
            current = f" {word}"
        else:  # a run of spaces: keep it on this line, unfolding must give it back
            current = f"{current} "
        if len(current) > _MAX_LINE:
            return _SUBJECT_PREFIX + b"\r\n ".join(_encoded_words(subject)) + b"\r\n"
    lines.append(current)
    return "\r\n".join(lines).encode("ascii") + b"\r\n"


def _encoded_words(text: str) -> list[bytes]:
    """``=?utf-8?b?…?=`` words, each holding whole characters (RFC 2047 section 5)."""
    words: list[bytes] = []
    chunk = bytearray()
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(b"=?utf-8?b?" + base64.b64encode(chunk) + b"?=")
            chunk.clear()
        chunk += encoded
    if chunk or not words:
        words.append(b"=?utf-8?b?" + base64.b64encode(chunk) + b"?=")
    return words


_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+: [\x20-\x7e]*(\r\n [\x20-\x7e]+)*\r\n")


def _check_header_line(line: bytes, value: str) -> None:
    """Check the finished bytes, not the input: one header, printable ASCII, folded only
    with CRLF + space, no line over the hard limit, and it reads back as ``value``."""
    if not _HEADER_LINE.fullmatch(line) or any(
        len(part) > _MAX_LINE for part in line.split(b"\r\n")
    ):
        raise HeaderInjectionError("Subject would not be a single well-formed header line")
    unfolded = line[len(_SUBJECT_PREFIX) : -2].replace(b"\r\n", b"").decode("ascii")
    if _read_back(unfolded) != value:
        raise HeaderInjectionError("Subject does not read back as the text it was made from")


def _read_back(unfolded: str) -> str:
    if "=?" not in unfolded:
        return unfolded
    # Whitespace between adjacent encoded words is not part of the text (RFC 2047 6.2).
    parts = unfolded.split(" ")
    if not all(part.startswith("=?utf-8?b?") and part.endswith("?=") for part in parts):
        return unfolded
    return b"".join(base64.b64decode(part[10:-2]) for part in parts).decode("utf-8")


def _headers_of(message: EmailMessage) -> bytes:
    raw = message.as_bytes(policy=_SMTP)
    return raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"


_NEWLINES = re.compile(r"\r\n|\r|\n")


def _base64_lines(text: str) -> bytes:
    # Text bodies are encoded in canonical form: CRLF line ends (RFC 2046 section 4.1.1).
    # Without CR (the usual case) a plain replace is several times faster than the regex.
    text = _NEWLINES.sub("\r\n", text) if "\r" in text else text.replace("\n", "\r\n")
    canonical = text.encode("utf-8")
    return base64.encodebytes(canonical).replace(b"\n", b"\r\n")


class EmailComposer:
    """Builds message bytes for one sender configuration.

    Parameters:
        sender: The ``From`` mailbox.
        reply_to: An optional ``Reply-To`` mailbox.
        message_id_domain: Right-hand side of every ``Message-ID``.
    """

    def __init__(
        self, sender: Address, *, reply_to: Address | None = None, message_id_domain: str
    ) -> None:
        if not _DOMAIN.fullmatch(message_id_domain):
            raise ConfigurationError(
                f"DISPATCHER_SMTP_MESSAGE_ID_DOMAIN: {message_id_domain!r} is not a domain"
            )
        self.sender = sender
        self.reply_to = reply_to
        self.message_id_domain = message_id_domain
        constant = EmailMessage(policy=_SMTP)
        constant["From"] = sender
        if reply_to is not None:
            constant["Reply-To"] = reply_to
        constant["MIME-Version"] = "1.0"
        # RFC 3834: machines must not auto-reply to these.
        constant["Auto-Submitted"] = "auto-generated"
        self._constant = _headers_of(constant)

    @property
    def envelope_sender(self) -> str:
        """The ``MAIL FROM`` address."""
        return self.sender.addr_spec

    def compose(
        self,
        *,
        to: str,
        subject: str,
        text: str,
        html: str,
        message_id: str,
        date: datetime,
        unsubscribe_url: str | None = None,
    ) -> bytes:
        """The whole message, CRLF line endings, ready for ``DATA``.

        Raises:
            InvalidAddressError: ``to`` is not one valid address.
            HeaderInjectionError: ``subject`` contains a line break or control character.
            ValueError: ``unsubscribe_url`` or ``message_id`` is malformed (our own
                values, so a programming error).
        """
        to_line = b"To: " + ascii_address(to).encode("ascii") + b"\r\n"
        subject_line = _subject_line(subject)
        if not re.fullmatch(r"<[\x21-\x3b\x3d\x3f-\x7e]+>", message_id):
            raise ValueError(f"malformed Message-ID {message_id!r}")
        lines = [
            self._constant,
            subject_line,
            to_line,
            b"Date: " + format_datetime(date).encode("ascii") + b"\r\n",
            b"Message-ID: " + message_id.encode("ascii") + b"\r\n",
        ]
        if unsubscribe_url is not None:
            if not _URL.fullmatch(unsubscribe_url) or len(unsubscribe_url) > _MAX_LINE - 20:
                raise ValueError(f"unsubscribe URL is not a plain http(s) URL: {unsubscribe_url!r}")
            lines.append(b"List-Unsubscribe: <" + unsubscribe_url.encode("ascii") + b">\r\n")
            lines.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
        # Base64 bodies hold only [A-Za-z0-9+/=], so "_" in the boundary never collides.
        boundary = b"=_dispatcher_" + secrets.token_hex(12).encode("ascii")
        lines += [
            b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n',
            b"\r\n--",
            boundary,
            b'\r\nContent-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n",
            _base64_lines(text),
            b"\r\n--",
            boundary,
            b'\r\nContent-Type: text/html; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n",
            _base64_lines(html),
            b"\r\n--",
            boundary,
            b"--\r\n",
        ]
        return b"".join(lines)
