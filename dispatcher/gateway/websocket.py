"""The real-time socket: ``/ws/notifications/{jwt}/``.

Server → client::

    {"type": "unread_count", "count": N}          on connect and whenever it changes
    {"type": "notification", "notification": {...}}
    {"type": "pong"} · {"type": "heartbeat"} · {"type": "resync"}
    {"type": "resumed", "count": K}                after the missed ones of a resume
    {"type": "error", "error": "not_found", "id": 123}
    {"type": "error", "error": "bad_request", "detail": "id must be an integer from 1 to ..."}
    {"type": "error", "error": "rate_limited"}

Client → server::

    {"type": "ping"}
    {"type": "mark_read", "id": 123}
    {"type": "resume", "since": <last notification id, or an ISO timestamp>}

The socket is live from the first ``unread_count``: it is sent once the socket is
registered for live messages. A notification published between the handshake and that
first count may not reach it, so a client that saw nothing yet and needs every message
sends ``resume`` after that first count (as a reconnecting client always does).

A malformed message (not JSON, an unknown ``type``, an id outside 1..2**63-1, a
``since`` that is neither an id nor a timestamp) gets ``bad_request`` with a ``detail``
saying which rule it broke; the socket stays open.

Each socket has one bounded queue fed by the process's :class:`~dispatcher.gateway.hub.Hub`
and one task that drains it, so a slow client only fills its own queue. When the queue
overflows the backlog is dropped and the client is told to ``resync`` (resume from its
last id). Sends are serialised by a lock, and the ids already sent are remembered, so a
``resume`` racing with live messages never sends one twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from dispatcher import log
from dispatcher.errors import AuthenticationError, NotFoundError
from dispatcher.gateway import client_messages
from dispatcher.gateway.auth import BEARER_SUBPROTOCOL, Principal, subprotocol_token
from dispatcher.gateway.client_messages import BadMessage, ClientMessage, MarkRead, Ping
from dispatcher.gateway.hub import RESYNC, Live
from dispatcher.gateway.metrics import CONNECTIONS, MESSAGES
from dispatcher.gateway.schemas import ID_MAX
from dispatcher.gateway.sent_ids import SentIds
from dispatcher.gateway.state import Gateway
from dispatcher.subscribers.inbox import InboxItem

#: Close codes (4000-4999 are the application's own).
CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429
#: A ``since`` given as digits; ASCII only (``"²".isdigit()`` is true, ``int("²")`` fails).
_DIGITS = re.compile(r"[0-9]{1,19}")


class SocketSession:
    """One authenticated socket of one subscriber."""

    def __init__(self, gw: Gateway, ws: WebSocket, caller: Principal) -> None:
        self.gw = gw
        self.ws = ws
        self.subscriber_id = caller.subscriber_id
        self.token_key = caller.token_key
        self.queue: asyncio.Queue[Live] = asyncio.Queue(gw.settings.socket_queue_size)
        self.overflowed = False
        self.unread = 0
        self._sent = SentIds()
        self._send_lock = asyncio.Lock()

    # -- fed by the hub (must not block) --------------------------------------

    def offer(self, live: Live) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(live)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
            log.warning("gateway.socket_overflow", subscriber=self.subscriber_id)

    # -- sending --------------------------------------------------------------

    async def _send(self, body: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(body))
        MESSAGES.labels("out", body.get("type", "")).inc()

    async def _send_count(self, count: int) -> None:
        self.unread = count
        await self._send({"type": "unread_count", "count": count})

    async def pump(self) -> None:
        """Drain the queue to the client until it goes away."""
        while True:
            live = await self.queue.get()
            async with self._send_lock:
                if live.kind == "resync":
                    self.overflowed = False
                    await self._send({"type": "resync"})
                elif live.kind == "notification":
                    assert live.notification_id is not None and live.text is not None
                    if self._sent.first_time(live.notification_id):
                        await self.ws.send_text(live.text)
                        MESSAGES.labels("out", "notification").inc()
                        # A new notification is unread: count it without a query.
                        await self._send_count(self.unread + 1)
                elif live.kind == "unread_count" and live.count not in (None, self.unread):
                    assert live.count is not None
                    await self._send_count(live.count)

    async def heartbeat(self, slot: str) -> None:
        """Keep idle connections alive through proxies, and our connection slot fresh.

        The first beat comes at a random point of the first interval: sockets that
        connected together (every client of a restarted gateway) would otherwise beat
        together for good, and 1,000 beats at once (a send and a Redis round trip each)
        held every live message back by up to 360 ms in ``bench.realtime``."""
        interval = self.gw.settings.heartbeat_seconds
        delay = interval * random.random()
        while True:
            await asyncio.sleep(delay)
            delay = interval
            async with self._send_lock:
                await self._send({"type": "heartbeat"})
            await self.gw.slots.refresh(self.subscriber_id, slot)

    # -- client messages ------------------------------------------------------

    async def read(self) -> None:
        """Handle client messages until the client disconnects."""
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            MESSAGES.labels("in", "any").inc()
            # Every message counts against the token's request rate, like REST calls,
            # malformed ones included (they cost an answer too).
            allowed, _ = await self.gw.rate.allow(self.token_key)
            if not allowed:
                await self._locked({"type": "error", "error": "rate_limited"})
                continue
            raw = message.get("text")
            try:
                body = client_messages.parse(
                    raw if raw is not None else message.get("bytes") or b""
                )
            except BadMessage as exc:
                await self._bad_request(exc.detail)
                continue
            await self.handle(body)

    async def _locked(self, body: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._send(body)

    async def _bad_request(self, detail: str) -> None:
        await self._locked({"type": "error", "error": "bad_request", "detail": detail})

    async def handle(self, body: ClientMessage) -> None:
        if isinstance(body, Ping):
            await self._locked({"type": "pong"})
        elif isinstance(body, MarkRead):
            await self.mark_read(body.id)
        else:
            await self.resume(body.since)

    async def mark_read(self, notification_id: int) -> None:
        inbox = self.gw.dispatcher.inboxes
        try:
            await run_in_threadpool(inbox.mark_read, self.subscriber_id, notification_id)
        except NotFoundError:
            await self._locked({"type": "error", "error": "not_found", "id": notification_id})
            return
        await self.gw.inbox_changed(self.subscriber_id)

    async def resume(self, since: int | str | None) -> None:
        """Send what arrived after ``since`` (an id or a timestamp), oldest first."""
        after_id = await run_in_threadpool(self._after_id, since)
        if after_id is None:
            await self._bad_request(client_messages.FIELD_RULES["since"])
            return
        limit = self.gw.settings.resume_limit
        items = await run_in_threadpool(self._missed, after_id, limit + 1)
        count = await self.gw.unread_count(self.subscriber_id)
        async with self._send_lock:
            sent = 0
            for item in items[:limit]:
                if self._sent.first_time(item.id):
                    await self._send({"type": "notification", "notification": item.to_dict()})
                    sent += 1
            await self._send({"type": "resumed", "count": sent})
            if len(items) > limit:
                await self._send({"type": "resync"})
            await self._send_count(count)

    def _missed(self, after_id: int, limit: int) -> list[InboxItem]:
        try:
            return self.gw.dispatcher.inboxes.since(self.subscriber_id, after_id, limit=limit)
        except NotFoundError:
            return []

    def _after_id(self, since: int | str | None) -> int | None:
        """The id to replay after, or None when ``since`` is neither an id nor a time."""
        if since is None:
            return 0
        if isinstance(since, int):
            return max(since, 0)  # the message schema bounds it to 64 bits
        if _DIGITS.fullmatch(since):
            after = int(since)
            return after if after <= ID_MAX else None
        try:
            moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            # 0001-01-01T00:00+05:00 parses, but has no UTC instant (OverflowError).
            moment = moment.astimezone(UTC)
        except (ValueError, OverflowError):
            return None
        return self._last_id_at(moment)

    def _last_id_at(self, moment: datetime) -> int:
        """The newest id created at or before ``moment`` (ids grow with time)."""
        return self.gw.dispatcher.inboxes.last_id_at(self.subscriber_id, moment)


def _token(ws: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to accept with) from the path, the query or the subprotocols."""
    token = ws.path_params.get("token") or ws.query_params.get("token")
    offered = list(ws.scope.get("subprotocols") or [])
    from_protocol = subprotocol_token(offered)
    if not token and from_protocol:
        return from_protocol, BEARER_SUBPROTOCOL
    return token, BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in offered else None


async def notifications_socket(ws: WebSocket) -> None:
    """The endpoint: authenticate, take a connection slot, then stream."""
    gw: Gateway = ws.app.state.gateway
    token, subprotocol = _token(ws)
    # Accept before refusing so that the client sees our close code, not a bare 403.
    await ws.accept(subprotocol=subprotocol)
    try:
        caller = gw.verifier.verify(token)
    except AuthenticationError:
        await ws.close(CLOSE_UNAUTHORIZED)
        return
    slot = await gw.slots.acquire(caller.subscriber_id)
    if slot is None:
        log.info("gateway.too_many_sockets", subscriber=caller.subscriber_id)
        await ws.close(CLOSE_TOO_MANY)
        return
    session = SocketSession(gw, ws, caller)
    gw.hub.add(caller.subscriber_id, session.offer)
    CONNECTIONS.inc()
    tasks: list[asyncio.Task[None]] = []
    try:
        await session._locked(
            {"type": "unread_count", "count": await gw.unread_count(caller.subscriber_id)}
        )
        tasks = [
            asyncio.create_task(session.read()),
            asyncio.create_task(session.pump()),
            asyncio.create_task(session.heartbeat(slot)),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect | OSError):
                log.error("gateway.socket_failed", error=type(exc).__name__)
    except (WebSocketDisconnect, OSError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        gw.hub.remove(caller.subscriber_id, session.offer)
        CONNECTIONS.dec()
        await gw.slots.release(caller.subscriber_id, slot)
        with contextlib.suppress(Exception):
            await ws.close()


#: The paths the frontend and other clients use.
ROUTES = [
    WebSocketRoute("/ws/notifications/{token}/", notifications_socket),
    WebSocketRoute("/ws/notifications/{token}", notifications_socket),
    WebSocketRoute("/ws/notifications/", notifications_socket),
    WebSocketRoute("/ws/notifications", notifications_socket),
]
