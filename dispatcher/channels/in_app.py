"""In-app: store the notification in the subscriber's inbox and ping open sockets.

The inbox row is the delivery; the Redis pub/sub message only tells gateways that
something is there. A ping lost while a gateway restarts is made good by the client's
``resume``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis
from sqlalchemy import bindparam, func, update
from sqlalchemy.orm import Session

from dispatcher import log, names
from dispatcher.channels.base import Channel, Message, Outcome
from dispatcher.clock import utcnow
from dispatcher.db.models import Notification, table
from dispatcher.db.types import UTCDateTime
from dispatcher.subscribers.inbox import InboxItem


class InAppChannel(Channel):
    """Stores notifications in the inbox and publishes them for the gateway."""

    name = "in_app"
    parts = ("title", "body", "url")
    optional_parts = ("url",)
    stores_in_transaction = True
    stores_silently = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        #: A plain (blocking) client: a publish is one short round trip on loopback.
        self._publisher: redis.Redis | None = None

    async def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    def store(self, session: Session, messages: Sequence[Message]) -> Sequence[Outcome]:
        """Write the inbox rows in the caller's transaction.

        The deliverer records their sent status in that same transaction, so both
        commit together, before any ping: a client that hears of a notification can
        always read it, and a crash cannot leave a stored notification that the sweep
        would deliver again.
        """
        now = utcnow()
        rows = [
            {
                "nid": m.notification_id,
                "title": m.content.get("title", ""),
                "body": m.content.get("body", ""),
                "url": m.content.get("url") or None,
                "now": now,
            }
            for m in messages
        ]
        session.connection().execute(_STORE_CONTENT, rows)
        return [Outcome.sent(m.delivery_id) for m in messages]

    def warm(self) -> None:
        """Connect the publisher now: the first announce would pay for it otherwise."""
        if self._publisher is None:
            self._publisher = redis.Redis.from_url(self.settings.redis_url)
        self._publisher.ping()

    def announce(self, messages: Sequence[Message]) -> None:
        """Publish the stored notifications to the gateways (best effort: clients catch
        up with ``resume`` on reconnect)."""
        live = [m for m in messages if m.realtime]
        if not live:
            return
        if self._publisher is None:
            self._publisher = redis.Redis.from_url(self.settings.redis_url)
        try:
            with self._publisher.pipeline(transaction=False) as pipe:
                for m in live:
                    pipe.publish(
                        names.inbox_channel(self.settings.redis_prefix, m.recipient.external_id),
                        json.dumps(self.realtime_message(m)),
                    )
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("in_app.publish_failed", count=len(live), error=type(exc).__name__)

    def publish(self, pings: Sequence[tuple[str, str]]) -> None:
        """Publish ready-made real-time messages, ``(subscriber external id, JSON)``, in
        one pipeline (best effort, as :meth:`announce`): a campaign chunk builds its
        pings without a :class:`Message` per recipient."""
        if not pings:
            return
        if self._publisher is None:
            self._publisher = redis.Redis.from_url(self.settings.redis_url)
        prefix = self.settings.redis_prefix
        try:
            # One script call per slice instead of a pipelined PUBLISH each: parsing a
            # reply per message costs the client more than Redis spends publishing.
            for start in range(0, len(pings), _PUBLISH_SLICE):
                part = pings[start : start + _PUBLISH_SLICE]
                self._publisher.eval(
                    _PUBLISH_ALL,
                    len(part),
                    *[names.inbox_channel(prefix, external_id) for external_id, _ in part],
                    *[payload for _, payload in part],
                )
        except redis.RedisError as exc:
            log.warning("in_app.publish_failed", count=len(pings), error=type(exc).__name__)

    async def send(self, messages: Sequence[Message]) -> Sequence[Outcome]:
        """:meth:`store` in a transaction of its own, then :meth:`announce`."""
        with self.context.store.session(write=True) as session:
            outcomes = self.store(session, messages)
        self.announce(messages)
        return outcomes

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
            actor=message.actor,
        )
        return {
            "type": "notification",
            "subscriber": message.recipient.external_id,
            "notification": item.to_dict(),
        }


#: Publishes ARGV[i] on KEYS[i] for every i, in one round trip (a chunk's pings).
_PUBLISH_ALL = "for i = 1, #KEYS do redis.call('PUBLISH', KEYS[i], ARGV[i]) end return #KEYS"
_PUBLISH_SLICE = 1000

_NOTIFICATIONS = table(Notification)
#: One prebuilt statement, run once per row (``executemany``); ``inbox_at`` keeps its
#: first value so a resend does not move the item in the inbox.
_STORE_CONTENT = (
    update(_NOTIFICATIONS)
    .where(_NOTIFICATIONS.c.id == bindparam("nid"))
    .values(
        title=bindparam("title"),
        body=bindparam("body"),
        url=bindparam("url"),
        inbox_at=func.coalesce(_NOTIFICATIONS.c.inbox_at, bindparam("now", type_=UTCDateTime())),
    )
)
