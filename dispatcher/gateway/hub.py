"""One Redis pub/sub subscription per gateway process, fanned out to local sockets.

Workers publish on ``{prefix}:inbox:{subscriber}`` (see
:func:`dispatcher.names.inbox_channel`). Each gateway process holds one
pattern subscription on ``{prefix}:inbox:*`` over one Redis connection, whatever the
number of sockets, and hands each message to the sockets of that subscriber that this
process holds. Messages are parsed and re-serialised once per message, not per socket.

Message kinds on the channel:

* ``{"type": "notification", "subscriber": id, "notification": {...}}`` (workers);
* ``{"type": "unread_count", "subscriber": id, "count": N}`` (any gateway, after a
  read, unread, archive or mark-all).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from dispatcher import log, names


@dataclass(frozen=True)
class Live:
    """One message for one subscriber's sockets."""

    kind: str
    #: The id of the notification, for ``notification`` messages.
    notification_id: int | None
    #: The JSON text to send as it is (``notification`` messages).
    text: str | None
    #: The unread count, for ``unread_count`` messages.
    count: int | None = None


#: Something that takes messages without blocking: a socket's queue.
Sink = Callable[[Live], None]

#: Sent to every local socket when messages may have been lost: the client must resume.
RESYNC = Live("resync", None, None)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class Hub:
    """Routes pub/sub messages to the sockets this process holds."""

    def __init__(self, redis: aioredis.Redis, prefix: str, *, retry_seconds: float = 1.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self._channel_head = names.inbox_channel(prefix, "")
        self._sinks: dict[str, set[Sink]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    # -- local sockets ----------------------------------------------------------

    def add(self, subscriber_id: str, sink: Sink) -> None:
        self._sinks.setdefault(subscriber_id, set()).add(sink)

    def remove(self, subscriber_id: str, sink: Sink) -> None:
        sinks = self._sinks.get(subscriber_id)
        if sinks is not None:
            sinks.discard(sink)
            if not sinks:
                del self._sinks[subscriber_id]

    @property
    def socket_count(self) -> int:
        return sum(len(s) for s in self._sinks.values())

    # -- lifecycle ----------------------------------------------------------------

    async def start(self, timeout: float = 10.0) -> None:
        """Subscribe, and return once the subscription is live."""
        self._task = asyncio.create_task(self._run(), name="dispatcher-gateway-hub")
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def healthy(self) -> bool:
        return self._subscribed.is_set() and self._task is not None and not self._task.done()

    async def _run(self) -> None:
        pattern = _glob_escape(self._channel_head) + "*"
        first = True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(pattern)
                self._subscribed.set()
                if not first:
                    # Messages published while we were away are lost: make every socket
                    # catch up from the database.
                    log.warning("gateway.pubsub_resubscribed", sockets=self.socket_count)
                    self._signal_gap()
                first = False
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._route(message)
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                log.warning("gateway.pubsub_lost", error=type(exc).__name__)
                await asyncio.sleep(self.retry_seconds)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _signal_gap(self) -> None:
        for sinks in list(self._sinks.values()):
            for sink in list(sinks):
                sink(RESYNC)

    def _route(self, message: dict[str, Any]) -> None:
        if message.get("type") != "pmessage":
            return
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        subscriber_id = channel[len(self._channel_head) :]
        sinks = self._sinks.get(subscriber_id)
        if not sinks:
            return
        live = parse(message["data"])
        if live is None:
            return
        for sink in list(sinks):
            sink(live)

    # -- publishing -----------------------------------------------------------

    async def publish_unread_count(self, subscriber_id: str, count: int) -> None:
        """Tell every gateway's sockets of this subscriber the new unread count."""
        payload = json.dumps({"type": "unread_count", "subscriber": subscriber_id, "count": count})
        try:
            await self.redis.publish(names.inbox_channel(self.prefix, subscriber_id), payload)
        except RedisError as exc:
            # The change is stored; other tabs see the right count on their next event.
            log.warning("gateway.publish_failed", error=type(exc).__name__)


def parse(data: bytes | str) -> Live | None:
    """Turn a pub/sub payload into a :class:`Live`, or None when it is not ours."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    kind = body.get("type")
    if kind == "notification" and isinstance(body.get("notification"), dict):
        notification = body["notification"]
        nid = notification.get("id")
        if not isinstance(nid, int):
            return None
        text = json.dumps({"type": "notification", "notification": notification})
        return Live("notification", nid, text)
    if kind == "unread_count" and isinstance(body.get("count"), int):
        return Live("unread_count", None, None, count=body["count"])
    return None
