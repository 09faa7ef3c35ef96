"""In-app: store the notification in the subscriber's inbox and ping open sockets.

The inbox row is the delivery; the Redis pub/sub message only tells gateways that
something is there. A ping lost while a gateway restarts is made good by the client's
``resume``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis
import redis.asyncio as aioredis
from sqlalchemy import BigInteger, Text, case, column, func, update, values
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from dispatcher import log
from dispatcher.channels.base import Channel, Message, Outcome
from dispatcher.clock import utcnow
from dispatcher.db.models import Notification
from dispatcher.inbox import InboxItem


def inbox_channel(prefix: str, subscriber_external_id: str) -> str:
    """The pub/sub channel that carries one subscriber's real-time messages."""
    return f"{prefix}:inbox:{subscriber_external_id}"


class InAppChannel(Channel):
    """Stores notifications in the inbox and publishes them for the gateway."""

    name = "in_app"
    parts = ("title", "body", "url")
    optional_parts = ("url",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._redis: aioredis.Redis | None = None

    async def open(self) -> None:
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self.settings.redis_url)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def send(self, messages: Sequence[Message]) -> Sequence[Outcome]:
        now = utcnow()
        rows = [
            {
                "nid": m.notification_id,
                "title": m.content.get("title", ""),
                "body": m.content.get("body", ""),
                "url": m.content.get("url") or None,
            }
            for m in messages
        ]
        store = self.context.store
        with store.session() as session:
            session.execute(_store_content(session, rows, now))
        await self.open()
        assert self._redis is not None
        live = [m for m in messages if m.realtime]
        if live:
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for m in live:
                        pipe.publish(
                            inbox_channel(self.settings.redis_prefix, m.recipient.external_id),
                            json.dumps(self.realtime_message(m)),
                        )
                    await pipe.execute()
            except redis.RedisError as exc:
                # Stored is delivered: clients catch up with ``resume`` on reconnect.
                log.warning("in_app.publish_failed", count=len(live), error=type(exc).__name__)
        return [Outcome.sent(m.delivery_id) for m in messages]

    @staticmethod
    def realtime_message(message: Message) -> dict[str, object]:
        """The JSON the gateway forwards to the subscriber's sockets."""
        item = InboxItem(
            id=message.notification_id,
            type=message.type.name,
            category=message.type.category,
            priority=str(message.priority),
            title=message.content.get("title", ""),
            body=message.content.get("body", ""),
            url=message.content.get("url") or None,
            data=dict(message.data),
            created_at=message.created_at,
            seen_at=None,
            read_at=None,
            archived_at=None,
        )
        return {
            "type": "notification",
            "subscriber": message.recipient.external_id,
            "notification": item.to_dict(),
        }


def _store_content(session: Session, rows: list[dict[str, Any]], now: datetime) -> Executable:
    """One statement that writes a batch's inbox content; ``inbox_at`` keeps its first
    value so a resend does not move the item in the inbox."""
    table = Notification.__table__
    if session.get_bind().dialect.name == "postgresql":
        content = values(
            column("nid", BigInteger),
            column("title", Text),
            column("body", Text),
            column("url", Text),
            name="content",
        ).data([(r["nid"], r["title"], r["body"], r["url"]) for r in rows])
        return (
            update(table)  # type: ignore[arg-type]
            .where(table.c.id == content.c.nid)
            .values(
                title=content.c.title,
                body=content.c.body,
                url=content.c.url,
                inbox_at=func.coalesce(table.c.inbox_at, now),
            )
        )
    # SQLite cannot name the columns of a VALUES list; a CASE per column does the same.
    ids = [r["nid"] for r in rows]

    def pick(key: str) -> Any:
        return case({r["nid"]: r[key] for r in rows}, value=table.c.id)

    return (
        update(table)  # type: ignore[arg-type]
        .where(table.c.id.in_(ids))
        .values(
            title=pick("title"),
            body=pick("body"),
            url=pick("url"),
            inbox_at=func.coalesce(table.c.inbox_at, now),
        )
    )
