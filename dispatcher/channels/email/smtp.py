"""SMTP transport: a small pool of persistent aiosmtplib connections.

Connections belong to the event loop that opened them, so a pool lives on one loop
(the worker process's :class:`~dispatcher.channels.runtime.ChannelRuntime`) and is
reused across batches. Each envelope is sent as ``MAIL``/``RCPT``/``DATA`` by hand so
that we know how far it got: a connection the server dropped before ``DATA`` is
reopened and the envelope retried once; a drop during ``DATA`` is reported as a
transient failure (the server may have the message; its stable ``Message-ID`` lets a
second copy be collapsed downstream).

Replies are classified here, once: 2xx accepted, 4xx / timeouts / refused or dropped
connections transient, 5xx permanent, except the 5xx that say the server wants TLS or a
login from us (530, 534, 535, 538): those are our configuration, and transient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import aiosmtplib

from dispatcher import log
from dispatcher.enums import Reason
from dispatcher.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from dispatcher.settings import SmtpSettings


@dataclass(frozen=True)
class Envelope:
    """One message for one recipient, ready to go on the wire."""

    sender: str
    recipient: str
    data: bytes

    def __post_init__(self) -> None:
        for address in (self.sender, self.recipient):
            if not address.isascii() or any(c in address for c in "<>\r\n \t"):
                raise ValueError(f"envelope address {address!r} is not a plain ASCII address")

    @property
    def sender_bytes(self) -> bytes:
        return self.sender.encode("ascii")

    @property
    def recipient_bytes(self) -> bytes:
        return self.recipient.encode("ascii")


@dataclass(frozen=True)
class SmtpReply:
    """The server's answer to ``DATA`` for an accepted message."""

    code: int
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


#: 5xx replies about the client's TLS or authentication (RFC 3207, RFC 4954).
_OUR_CONFIGURATION = frozenset({530, 534, 535, 538})


_T = TypeVar("_T")


def _as_is(envelope: Envelope) -> Envelope:
    return envelope


def classify_reply(code: int, message: str, *, stage: str) -> DeliveryError:
    """Turn a non-2xx SMTP reply into a transient (4xx) or permanent (5xx) error."""
    text = f"SMTP {code} {message} (at {stage})"
    if code in _OUR_CONFIGURATION:
        # The server refuses *us* (no STARTTLS, no login), not the message: every message
        # would fail the same way until the settings are fixed, so keep them for later.
        return TransientDeliveryError(text, reason="smtp_auth_required")
    if 500 <= code < 600:
        return PermanentDeliveryError(text, reason=Reason.REJECTED)
    return TransientDeliveryError(text, reason=f"smtp_{code}" if code > 0 else "smtp_error")


def _unavailable(exc: BaseException, *, stage: str) -> TransientDeliveryError:
    return TransientDeliveryError(
        f"SMTP server unavailable at {stage}: {type(exc).__name__}: {exc}",
        reason="smtp_unavailable",
    )


class SmtpPool:
    """Up to ``pool_size`` persistent connections to one SMTP server.

    Call :meth:`open` and :meth:`close` on the loop that sends; :meth:`send_many`
    spreads envelopes over every connection at once.
    """

    def __init__(self, settings: SmtpSettings) -> None:
        if not settings.host:
            raise ValueError("SmtpPool needs DISPATCHER_SMTP_HOST")
        self.settings = settings
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] | None = None
        self._clients: list[aiosmtplib.SMTP] = []

    def _new_client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            local_hostname=s.local_hostname,
            timeout=s.timeout,
            use_tls=s.security == "tls",
            # Explicit: None would fall back to plaintext when STARTTLS is not offered.
            start_tls=s.security == "starttls",
            validate_certs=s.validate_certs,
            cert_bundle=s.ca_file,
        )

    async def open(self) -> None:
        """Create the connections and try to connect them; a server that is down now
        is not an error here (each send reconnects)."""
        if self._idle is not None:
            return
        self._clients = [self._new_client() for _ in range(self.settings.pool_size)]
        self._idle = asyncio.LifoQueue()
        for client in self._clients:
            self._idle.put_nowait(client)
        results = await asyncio.gather(
            *(self._connect(c) for c in self._clients), return_exceptions=True
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning(
                "smtp.open_failed",
                host=self.settings.host,
                port=self.settings.port,
                failed=len(failed),
                error=str(failed[0]),
            )

    async def close(self) -> None:
        """Say QUIT on every open connection and forget them."""
        clients, self._clients, self._idle = self._clients, [], None
        for client in clients:
            if client.is_connected:
                try:
                    await asyncio.wait_for(client.quit(), timeout=self.settings.timeout)
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    client.close()

    @property
    def connected(self) -> int:
        """How many pool connections are open right now."""
        return sum(1 for c in self._clients if c.is_connected)

    async def _connect(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise TransientDeliveryError(
                f"SMTP {exc.code} at connect: {exc.message}", reason="smtp_unavailable"
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise _unavailable(exc, stage="connect") from None

    async def send_many(
        self, items: Sequence[_T], prepare: Callable[[_T], Envelope]
    ) -> list[SmtpReply | DeliveryError]:
        """Send every item over the pool concurrently; one result per item, in order.

        ``prepare`` turns an item into its envelope just before it goes out, so that
        building one message overlaps the server's work on another. If it raises a
        :class:`DeliveryError`, that is the item's result. Failures are results, never
        exceptions.
        """
        if self._idle is None:
            await self.open()
        results: list[SmtpReply | DeliveryError | None] = [None] * len(items)
        pending = iter(range(len(items)))

        async def lane() -> None:
            assert self._idle is not None
            client = await self._idle.get()
            try:
                for index in pending:
                    try:
                        envelope = prepare(items[index])
                    except DeliveryError as exc:
                        results[index] = exc
                        continue
                    results[index] = await self._send_on(client, envelope)
            finally:
                if self._idle is not None:
                    self._idle.put_nowait(client)

        lanes = min(len(items), self.settings.pool_size)
        await asyncio.gather(*(lane() for _ in range(lanes)))
        return [
            r if r is not None else _unavailable(RuntimeError("not sent"), stage="queue")
            for r in results
        ]

    async def send(self, envelope: Envelope) -> SmtpReply | DeliveryError:
        """Send one envelope (see :meth:`send_many`)."""
        return (await self.send_many([envelope], _as_is))[0]

    async def _send_on(
        self, client: aiosmtplib.SMTP, envelope: Envelope
    ) -> SmtpReply | DeliveryError:
        for retry in (False, True):
            fresh = False
            if not client.is_connected:
                try:
                    await self._connect(client)
                except DeliveryError as exc:
                    return exc
                fresh = True
            stage = "MAIL"
            try:
                # Addresses were validated and made ASCII by the channel, so the raw
                # commands skip aiosmtplib's per-call parseaddr (a tenth of the CPU).
                reply = await client.execute_command(
                    b"MAIL", b"FROM:<" + envelope.sender_bytes + b">"
                )
                if reply.code != 250:
                    raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, envelope.sender)
                stage = "RCPT"
                reply = await client.execute_command(
                    b"RCPT", b"TO:<" + envelope.recipient_bytes + b">"
                )
                if reply.code not in (250, 251):
                    raise aiosmtplib.SMTPRecipientRefused(
                        reply.code, reply.message, envelope.recipient
                    )
                stage = "DATA"
                response = await client.data(envelope.data)
                return SmtpReply(response.code, response.message)
            except aiosmtplib.SMTPServerDisconnected as exc:
                # Dropped before DATA: nothing was accepted, so retrying on a new
                # connection cannot duplicate. A fresh connection that drops is down.
                if stage == "DATA" or fresh or retry:
                    return _unavailable(exc, stage=stage)
                log.info("smtp.reconnect", host=self.settings.host, stage=stage)
            except aiosmtplib.SMTPResponseException as exc:
                await self._reset(client)
                return classify_reply(exc.code, exc.message, stage=stage)
            except aiosmtplib.SMTPRecipientsRefused as exc:  # pragma: no cover - sendmail only
                await self._reset(client)
                first = exc.recipients[0]
                return classify_reply(first.code, first.message, stage=stage)
            except (aiosmtplib.SMTPException, OSError) as exc:
                client.close()
                return _unavailable(exc, stage=stage)
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _reset(client: aiosmtplib.SMTP) -> None:
        """Abandon the current envelope so the connection can carry the next one."""
        if not client.is_connected:
            return
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            client.close()
