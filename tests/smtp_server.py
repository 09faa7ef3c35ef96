"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, recording every message.

It can be told to answer a chosen recipient with an error code (421, 450, 451, 550,
554...) at ``RCPT`` or at ``DATA``, or to drop the connection, a given number of times
or for ever. Import ``smtp_server_fixture`` and ``smtp_server_session`` into a test
module to get the ``smtp_server`` fixture.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

DROP = "drop"


def free_port() -> int:
    """A TCP port nobody listens on right now (``Controller(port=0)`` does not work)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    def parse(self) -> EmailMessage:
        message = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(message, EmailMessage)
        return message


#: Every header a dispatcher email carries, and the optional ones; anything else (a
#: ``Bcc`` or a second ``Reply-To`` smuggled through a subject) is a violation.
REQUIRED_HEADERS = frozenset(
    {
        "from",
        "mime-version",
        "auto-submitted",
        "subject",
        "to",
        "date",
        "message-id",
        "content-type",
    }
)
OPTIONAL_HEADERS = frozenset({"reply-to", "list-unsubscribe", "list-unsubscribe-post"})


def message_violations(mail_from: str, rcpt_tos: list[str], data: bytes) -> list[str]:
    """What is wrong with one received dispatcher email: exactly the headers we write,
    each once; one envelope recipient, the same as ``To``; the body where we put it
    (``multipart/alternative``: text/plain, then text/html, nothing after)."""
    problems: list[str] = []
    if len(rcpt_tos) != 1:
        problems.append(f"{len(rcpt_tos)} envelope recipients")
    head, separator, _ = data.partition(b"\r\n\r\n")
    if not separator:
        return [*problems, "no blank line after the headers"]
    if any(byte > 0x7E for byte in head):
        problems.append("8-bit bytes in the headers")
    message = BytesParser(policy=policy.default).parsebytes(data)
    names = [name.lower() for name in message]
    for name in sorted(set(names)):
        if names.count(name) > 1:
            problems.append(f"header {name} appears {names.count(name)} times")
    if missing := REQUIRED_HEADERS - set(names):
        problems.append(f"missing headers {sorted(missing)}")
    if extra := set(names) - REQUIRED_HEADERS - OPTIONAL_HEADERS:
        problems.append(f"unexpected headers {sorted(extra)}")
    if message.defects:
        problems.append(f"defects {message.defects}")
    to = message["To"]
    if rcpt_tos and (to is None or [a.addr_spec for a in to.addresses] != rcpt_tos):
        problems.append("To does not name the envelope recipient")
    parts = [part.get_content_type() for part in message.iter_parts()]
    if message.get_content_type() != "multipart/alternative" or parts != [
        "text/plain",
        "text/html",
    ]:
        problems.append(f"body is {message.get_content_type()} with parts {parts}")
    return problems


@dataclass
class Rule:
    """Answer ``reply`` (an SMTP line or :data:`DROP`) at ``stage``, ``times`` times."""

    reply: str
    stage: str = "rcpt"
    times: int | None = None
    hits: int = 0


@dataclass
class Recorder:
    """The aiosmtpd handler: applies rules, records what it accepts."""

    messages: list[Received] = field(default_factory=list)
    #: Messages that failed :func:`message_violations`; refused with 554, and the
    #: ``smtp_server`` fixture fails the test that sent them.
    violations: list[tuple[Received, list[str]]] = field(default_factory=list)
    #: Check every message with :func:`message_violations` (off for tests of the SMTP
    #: provider alone, which send hand-made bytes).
    strict: bool = True
    rules: dict[str, Rule] = field(default_factory=dict)
    connections: int = 0
    #: Seconds to wait before answering ``RCPT`` and ``DATA`` (a slow relay).
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _rule(self, address: str, stage: str) -> Rule | None:
        with self.lock:
            rule = self.rules.get(address.lower())
            if rule is None or rule.stage != stage:
                return None
            if rule.times is not None and rule.hits >= rule.times:
                return None
            rule.hits += 1
            return rule

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> Any:
        with self.lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        rule = self._rule(address, "rcpt")
        if rule is not None:
            if rule.reply == DROP:
                assert server.transport is not None
                server.transport.close()
                return "421 4.4.2 connection dropped"
            return rule.reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        for address in envelope.rcpt_tos:
            rule = self._rule(address, "data")
            if rule is not None:
                if rule.reply == DROP:
                    assert server.transport is not None
                    server.transport.close()
                    return "421 4.4.2 connection dropped"
                return rule.reply
        content = envelope.original_content or envelope.content or b""
        assert isinstance(content, bytes)
        received = Received(str(envelope.mail_from), list(envelope.rcpt_tos), content)
        problems = (
            message_violations(received.mail_from, received.rcpt_tos, content)
            if self.strict
            else []
        )
        if problems:
            with self.lock:
                self.violations.append((received, problems))
            return "554 5.6.0 malformed message: " + "; ".join(problems)[:200]
        with self.lock:
            self.messages.append(received)
            number = len(self.messages)
        return f"250 2.0.0 Ok: queued as Q{number}"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(
        self,
        port: int | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        tls_mode: str = "starttls",
        strict: bool = True,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.recorder = Recorder(strict=strict)
        #: With ``tls``: "starttls" (offered and required) or "tls" (implicit, from byte 0).
        self.tls = tls
        self.tls_mode = tls_mode
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        if self._controller is None:
            extra: dict[str, Any] = {}
            if self.tls is not None and self.tls_mode == "tls":
                extra["ssl_context"] = self.tls
            elif self.tls is not None:
                extra.update(tls_context=self.tls, require_starttls=True)
            self._controller = Controller(
                self.recorder, hostname=self.host, port=self.port, decode_data=False, **extra
            )
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[Received]:
        return list(self.recorder.messages)

    def message_ids(self) -> list[str]:
        """The ``Message-ID`` of every accepted message, in arrival order."""
        return [str(m.parse()["Message-ID"]) for m in self.messages]

    def to(self, address: str) -> list[Received]:
        """Messages whose envelope names ``address``."""
        return [m for m in self.messages if address in m.rcpt_tos]

    def fail(
        self, address: str, reply: str, *, stage: str = "rcpt", times: int | None = None
    ) -> None:
        """Answer ``reply`` (e.g. ``"550 5.1.1 no such user"`` or :data:`DROP`) for
        ``address`` at ``stage`` (``rcpt`` or ``data``), ``times`` times (None: always)."""
        with self.recorder.lock:
            self.recorder.rules[address.lower()] = Rule(reply, stage, times)

    def reset(self) -> None:
        with self.recorder.lock:
            self.recorder.messages.clear()
            self.recorder.violations.clear()
            self.recorder.rules.clear()
            self.recorder.connections = 0
            self.recorder.delay = 0.0

    def env(self, **extra: str) -> dict[str, str]:
        """Environment variables pointing a worker at this server, no TLS."""
        return {
            "DISPATCHER_SMTP_HOST": self.host,
            "DISPATCHER_SMTP_PORT": str(self.port),
            "DISPATCHER_SMTP_SECURITY": "none",
            **extra,
        }

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The ``smtp`` settings group for an in-process dispatcher."""
        return {"host": self.host, "port": self.port, "security": "none", **extra}


@pytest.fixture(scope="session", name="_smtp_server")
def smtp_server_session() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(name="smtp_server")
def smtp_server_fixture(_smtp_server: SmtpServer) -> Iterator[SmtpServer]:
    """A running SMTP server with no messages and no rules."""
    _smtp_server.start()
    _smtp_server.reset()
    yield _smtp_server
    violations = list(_smtp_server.recorder.violations)
    _smtp_server.start()
    _smtp_server.reset()
    assert not violations, f"malformed emails reached the SMTP server: {violations}"
