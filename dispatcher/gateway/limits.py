"""Bounds on what one caller may cost: body size, request rate, open sockets.

* :class:`BodySizeLimit` is ASGI middleware: a declared ``Content-Length`` over the
  limit gets 413 before the body is read; a streamed body is counted as it arrives.
* :class:`RequestRate` counts requests per token per minute in Redis, so the limit holds
  across gateway processes (fixed one-minute windows: cheap, and good enough to stop a
  runaway client).
* :class:`ConnectionSlots` counts a subscriber's open sockets across processes in a
  Redis sorted set scored by expiry, so a crashed gateway's slots free themselves.
"""

from __future__ import annotations

import json
import time
import uuid

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dispatcher import log, names


class BodySizeLimit:
    """Answer 413 to HTTP requests whose body exceeds ``max_bytes``.

    The body is read (at most ``max_bytes`` of it) before the app runs and replayed to
    it: an error raised from inside the app's body parsing would be turned into a 400
    by FastAPI, and the limit is small enough to buffer.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await _reject(send)
                    return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await _reject(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reject(send: Send) -> None:
    body = json.dumps({"detail": "request body too large"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestRate:
    """At most ``per_minute`` requests per token key in each wall-clock minute."""

    def __init__(self, redis: aioredis.Redis, prefix: str, per_minute: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.per_minute = per_minute

    async def allow(self, token_key: str) -> tuple[bool, int]:
        """Count one request; returns (allowed, seconds until the window resets)."""
        now = time.time()
        window = int(now // 60)
        key = names.gateway_request_rate(self.prefix, token_key, window)
        retry_after = max(1, 60 - int(now % 60))
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, 120)
                count, _ = await pipe.execute()
        except RedisError as exc:
            # Fail open: a Redis blip must not lock every user out of their inbox.
            log.warning("gateway.rate_limit_unavailable", error=type(exc).__name__)
            return True, retry_after
        return int(count) <= self.per_minute, retry_after


class ConnectionSlots:
    """At most ``max_per_subscriber`` open sockets per subscriber, across processes."""

    def __init__(
        self, redis: aioredis.Redis, prefix: str, max_per_subscriber: int, ttl_seconds: float
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.max_per_subscriber = max_per_subscriber
        self.ttl_seconds = ttl_seconds

    def _key(self, subscriber_id: str) -> str:
        return names.gateway_connections(self.prefix, subscriber_id)

    async def acquire(self, subscriber_id: str) -> str | None:
        """A slot id, or None when the subscriber already has the maximum open."""
        slot = uuid.uuid4().hex
        key = self._key(subscriber_id)
        now = time.time()
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zadd(key, {slot: now + self.ttl_seconds})
                pipe.zcard(key)
                pipe.expire(key, int(self.ttl_seconds) + 60)
                _, _, count, _ = await pipe.execute()
            if int(count) > self.max_per_subscriber:
                await self.redis.zrem(key, slot)
                return None
        except RedisError as exc:
            log.warning("gateway.connection_slots_unavailable", error=type(exc).__name__)
        return slot

    async def refresh(self, subscriber_id: str, slot: str) -> None:
        """Keep the slot alive (called on every heartbeat)."""
        try:
            await self.redis.zadd(
                self._key(subscriber_id), {slot: time.time() + self.ttl_seconds}, xx=True
            )
        except RedisError as exc:
            log.warning("gateway.connection_slots_unavailable", error=type(exc).__name__)

    async def release(self, subscriber_id: str, slot: str) -> None:
        try:
            await self.redis.zrem(self._key(subscriber_id), slot)
        except RedisError as exc:
            log.warning("gateway.connection_slots_unavailable", error=type(exc).__name__)
