"""Bounds on a request's head: how long it may take and how large it may be.

uvicorn (0.54, httptools) sets no deadline before the first request's headers are in,
and accumulates a request line of any length: a client can hold a connection forever by
sending nothing, or send megabytes of URL. Its WebSocket protocol also loses the answer
websockets writes to a handshake it refuses while parsing (a request line over 8 KiB
gets "414" in the log, but nothing is sent and the connection stays open until the
client gives up). These protocol classes close those gaps:

* :class:`BoundedHttpProtocol`: a request line and headers must arrive within
  ``DISPATCHER_GATEWAY_REQUEST_HEAD_TIMEOUT_SECONDS`` (else 408); the URL is at most
  :data:`MAX_URL_BYTES` (else 414) and the head :data:`MAX_HEAD_BYTES` (else 431). Each
  refusal is answered and the connection closed at once.
* :class:`BoundedWebSocketProtocol`: a handshake websockets refuses while parsing is
  answered (its 414/431/400) and closed at once.

``dispatcher gateway`` uses both (see :func:`protocol_classes`); with plain uvicorn pass
``--http dispatcher.gateway.handshake:BoundedHttpProtocol --ws
dispatcher.gateway.handshake:BoundedWebSocketProtocol`` (the timeout is then 5 s).
"""

from __future__ import annotations

import asyncio
import json
import random
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from dispatcher import log
from dispatcher.settings import GatewaySettings

#: Longest URL (path and query). A JWT in the socket's path is well under 2 KiB.
MAX_URL_BYTES = 8192
#: Longest request line plus headers, as counted by the parser.
MAX_HEAD_BYTES = 32 * 1024
#: What the transport may hand over in one read beyond a byte limit before we look
#: (asyncio reads up to 256 KiB): the raw-byte guard allows this much slack so that a
#: previous request's body in the same read is never mistaken for head bytes.
_READ_SLACK = 256 * 1024


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a refused request."""


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on request heads."""

    #: Seconds a client has to send a request line and headers.
    head_timeout: ClassVar[float] = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._raw_head_bytes = 0
        self._refused = False

    # -- the head's life: opened on connect and on each new request, closed when complete

    def _open_head(self) -> None:
        self._head_bytes = 0
        self._raw_head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_expired)

    def _close_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self._refused or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head waits behind a response still being written: answering
            # 408 now would cut into it. Look again later.
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_expired)
            return
        self._refuse(HTTPStatus.REQUEST_TIMEOUT, "request head not received in time")

    def _refuse(self, status: HTTPStatus, reason: str) -> None:
        """Answer ``status`` and close; nothing else of this connection is read."""
        self._refused = True
        self._close_head()
        log.info("gateway.request_refused", status=int(status), reason=reason)
        body = json.dumps({"detail": reason}).encode()  # the API's error shape
        head = (
            f"HTTP/1.1 {int(status)} {status.phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()

    # -- uvicorn's protocol and parser callbacks ----------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._open_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._close_head()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # closing: the rest of the request does not matter
        super().data_received(data)
        if self._head_timer is not None and not self._refused:
            # Still inside a head after this read. The parser buffers a header's value
            # before any callback sees it, so count raw bytes too.
            self._raw_head_bytes += len(data)
            if self._raw_head_bytes > MAX_HEAD_BYTES + _READ_SLACK:
                self._refuse(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"request head over {MAX_HEAD_BYTES} bytes",
                )

    def send_400_response(self, msg: str) -> None:
        # A callback that refused the request stopped the parser by raising, which
        # uvicorn reports as an invalid request: the refusal was already answered.
        if not self._refused:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._open_head()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            self._refuse(HTTPStatus.REQUEST_URI_TOO_LONG, f"URL over {MAX_URL_BYTES} bytes")
            raise _Refused
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"request head over {MAX_HEAD_BYTES} bytes",
            )
            raise _Refused

    def on_headers_complete(self) -> None:
        self._close_head()
        super().on_headers_complete()


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets protocol, sending the refusals websockets makes while parsing,
    with its keepalive pings spread out."""

    def start_keepalive(self) -> None:
        """The first protocol ping at a random point of the first interval, then one per
        interval (uvicorn's own schedule): sockets that connected together would
        otherwise be pinged together for good, as they would beat together (see
        :meth:`~dispatcher.gateway.websocket.SocketSession.heartbeat`)."""
        if self.ping_interval is not None and self.ping_interval > 0:
            first = self.ping_interval * random.random()
            self.ping_timer = self.loop.call_later(first, self.send_keepalive_ping)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if (
            not self.handshake_initiated
            and self.conn.handshake_exc is not None
            and not self.transport.is_closing()
        ):
            # websockets refused the head (a line over 8 KiB, too many headers, not
            # HTTP) and queued its answer; uvicorn only sends answers to requests it
            # saw, so send this one and hang up.
            log.info("gateway.handshake_refused", reason=type(self.conn.handshake_exc).__name__)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()


def protocol_classes(
    settings: GatewaySettings,
) -> tuple[type[BoundedHttpProtocol], type[BoundedWebSocketProtocol]]:
    """The HTTP and WebSocket protocol classes for uvicorn, with the configured deadline."""

    class ConfiguredHttpProtocol(BoundedHttpProtocol):
        head_timeout = settings.request_head_timeout_seconds

    return ConfiguredHttpProtocol, BoundedWebSocketProtocol
