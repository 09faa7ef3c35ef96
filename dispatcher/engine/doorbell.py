"""The doorbell: Celery messages that only say "look at row X".

Ringing never fails the caller: the rows are already committed, and the beat sweep
re-rings anything that is due but unclaimed, so a broker outage delays work but loses
none of it.

Fan-out rings are coalesced. A fan-out message asks its worker to *drain*: to fan out
every due event of the same priority and kind (direct or campaign) until none is left.
A :class:`Latch` in Redis marks that such a drain is on its way or running, and while
it is held ``notify`` does not ring. The drain releases it only when it finds nothing
left, and then looks once more: a producer that found the latch held had committed its
event before the release, so that last look finds it; one that comes after the release
rings anew. An idle system still sends one message per event; a busy one sends one per
burst, which is when the per-message cost matters. See :func:`dispatcher.engine.drain.drain`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from dispatcher import log, names
from dispatcher.enums import Priority

if TYPE_CHECKING:
    from celery import Celery

#: Publishing gives up quickly: the sweep is the real guarantee.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5}

_PENDING_KEY = "dispatcher.doorbell.pending"

#: How long a draining fan-out message is trusted to arrive. If it was lost (a worker
#: killed with it prefetched), the first ``notify`` after this rings again; the sweep
#: catches up on the events in between.
LATCH_SECONDS = 10.0


class Latch:
    """Redis keys saying "a draining fan-out task for this kind of event is on its way".

    A kind is a priority plus whether the events belong to a campaign (the two go to
    different queues). The keys name the broker too (a digest of its URL): producers
    ringing different brokers must not silence each other. Any Redis error counts as
    "not latched": ringing twice is harmless, not ringing is not.
    """

    def __init__(
        self, redis_url: str, prefix: str, broker_url: str, *, seconds: float = LATCH_SECONDS
    ) -> None:
        self._redis_url = redis_url
        broker = hashlib.sha256(broker_url.encode()).hexdigest()[:12]
        self._prefix = prefix
        self._broker = broker
        self._milliseconds = int(seconds * 1000)
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._redis_url, socket_timeout=2, socket_connect_timeout=2
            )
        return self._client

    def key(self, priority: Priority, bulk: bool) -> str:
        kind = "campaign" if bulk else "direct"
        return names.fanout_latch(self._prefix, self._broker, priority, kind)

    def take(self, priority: Priority, bulk: bool) -> bool:
        """Latch this kind; False if a draining task is already on its way."""
        try:
            taken = self.client.set(self.key(priority, bulk), "1", nx=True, px=self._milliseconds)
        except redis.RedisError:
            return True
        return bool(taken)

    def release(self, priority: Priority, bulk: bool) -> None:
        """Let the next event of this kind ring (its expiry does so if Redis is away)."""
        try:
            self.client.delete(self.key(priority, bulk))
        except redis.RedisError as exc:
            log.warning("doorbell.latch_release_failed", error=type(exc).__name__)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class Doorbell:
    """Enqueues fan-out and delivery tasks on the right queues."""

    def __init__(self, app_factory: Callable[[], Celery], latch: Latch) -> None:
        self._app_factory = app_factory
        self._app: Celery | None = None
        self.latch = latch

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = self._app_factory()
        return self._app

    def _send(
        self,
        name: str,
        args: list[Any],
        queue: str,
        kwargs: dict[str, Any] | None = None,
        **ids: Any,
    ) -> bool:
        try:
            self.app.send_task(
                name,
                args=args,
                kwargs=kwargs,
                queue=queue,
                retry=True,
                retry_policy=PUBLISH_RETRY,
            )
        except Exception as exc:  # kombu raises several unrelated types when Redis is away
            log.warning("doorbell.failed", task=name, queue=queue, error=type(exc).__name__, **ids)
            return False
        return True

    def fanout(self, event_id: int | None, priority: Priority | str, *, bulk: bool = False) -> bool:
        """Ask a worker to fan out event ``event_id`` (if given) and every other due event
        of its kind; nothing is sent while a draining task holds the kind's latch.

        Returns False only when the broker refused the message (the sweep rings later).
        """
        priority = Priority(priority)
        if not self.latch.take(priority, bulk):
            return True
        sent = self._send_drain(event_id, priority, bulk, holds_latch=True)
        if not sent:
            self.latch.release(priority, bulk)
        return sent

    def relay(self, priority: Priority | str, *, bulk: bool, holds_latch: bool) -> bool:
        """Ring a draining fan-out task from a drain: its successor (which takes over
        the latch it holds) or a helper (which holds none)."""
        priority = Priority(priority)
        sent = self._send_drain(None, priority, bulk, holds_latch=holds_latch)
        if not sent and holds_latch:
            self.latch.release(priority, bulk)  # nobody would release it: let notify ring
        return sent

    def _send_drain(
        self, event_id: int | None, priority: Priority, bulk: bool, *, holds_latch: bool
    ) -> bool:
        drain = {"priority": priority.value, "bulk": bulk, "holds_latch": holds_latch}
        queue = names.for_priority(priority, bulk=bulk)
        return self._send(names.FANOUT, [event_id], queue, {"drain": drain}, event_id=event_id)

    def deliver(
        self,
        delivery_ids: Sequence[int],
        priority: Priority | str,
        *,
        bulk: bool = False,
        batch_size: int = 500,
    ) -> int:
        """Ask workers to send these deliveries, ``batch_size`` per task; returns tasks sent."""
        queue = names.for_priority(priority, bulk=bulk)
        sent = 0
        ids = list(delivery_ids)
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            if self._send(
                names.DELIVER, [chunk], queue, first_delivery_id=chunk[0], count=len(chunk)
            ):
                sent += 1
        return sent

    def campaign_chunk(self, run_id: int) -> bool:
        """Ask a worker to create and send the next chunk of campaign run ``run_id`` (on
        the bulk queue); False when the broker refused (beat rings stalled runs again)."""
        return self._send(names.CAMPAIGN_CHUNK, [run_id], names.BULK, run_id=run_id)

    def after_commit(self, session: Session, ring: Callable[[], object]) -> None:
        """Call ``ring`` once ``session``'s transaction commits; forget it on rollback."""
        pending: list[Callable[[], object]] | None = session.info.get(_PENDING_KEY)
        if pending is None:
            pending = session.info[_PENDING_KEY] = []
            event.listen(session, "after_commit", _ring_pending)
            event.listen(session, "after_rollback", _forget_pending)
        pending.append(ring)


def _ring_pending(session: Session) -> None:
    pending = session.info.get(_PENDING_KEY) or []
    if session.in_nested_transaction():
        return
    rings = list(pending)
    pending.clear()
    for ring in rings:
        ring()


def _forget_pending(session: Session) -> None:
    if session.in_nested_transaction():
        return
    pending = session.info.get(_PENDING_KEY)
    if pending:
        pending.clear()
