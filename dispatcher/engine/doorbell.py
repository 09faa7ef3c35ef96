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

The latch has slots (``DISPATCHER_FANOUT_DRAINS``): up to that many drains of a kind
run at once, each holding one slot, and ``notify`` rings while any slot is free. On
PostgreSQL two drains take disjoint events (``FOR UPDATE SKIP LOCKED``), so an event
that arrives while one drain is in a transaction starts at once in the other instead
of waiting for that transaction to end. SQLite has one writer: one slot. The argument
above holds slot by slot: a producer that found every slot held committed before any
of them was released, and each holder looks once more after its release.

The caller never waits on the doorbell (DESIGN principle 11). The ringing connection
has short timeouts (``DISPATCHER_RING_TIMEOUT_SECONDS``), and a :class:`Breaker` stops
trying for ``DISPATCHER_RING_PAUSE_SECONDS`` after a failure: while it is open, rings
are skipped at once and the sweep rings the rows instead. It logs once when it starts
skipping and once when a ring gets through again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import redis
from redis.commands.core import Script
from sqlalchemy import event
from sqlalchemy.orm import Session

from dispatcher import log, names
from dispatcher.enums import Priority

if TYPE_CHECKING:
    from celery import Celery

    from dispatcher.settings import Settings

#: Publishing gives up quickly (one reconnect, at once): the sweep is the real guarantee.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}

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
        self,
        redis_url: str,
        prefix: str,
        broker_url: str,
        *,
        seconds: float = LATCH_SECONDS,
        timeout: float = 2.0,
        slots: int = 1,
    ) -> None:
        if slots < 1:
            raise ValueError(f"a latch needs at least one slot, not {slots}")
        self._redis_url = redis_url
        self._timeout = timeout
        broker = hashlib.sha256(broker_url.encode()).hexdigest()[:12]
        self._prefix = prefix
        self._broker = broker
        self._milliseconds = int(seconds * 1000)
        #: Drains of one kind that may run at once (one slot each).
        self.slots = slots
        self._client: redis.Redis | None = None
        self._take_first_free: Script | None = None

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis.Redis.from_url(
                self._redis_url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
            )
        return self._client

    def key(self, priority: Priority, bulk: bool, slot: int = 0) -> str:
        kind = "campaign" if bulk else "direct"
        return names.fanout_latch(self._prefix, self._broker, priority, kind, slot)

    def take(self, priority: Priority, bulk: bool) -> int | None:
        """Take a free slot of this kind and return it; None if every slot is held (as
        many draining tasks are on their way). One round trip whatever the slots."""
        try:
            if self.slots == 1:
                taken = self.client.set(
                    self.key(priority, bulk), "1", nx=True, px=self._milliseconds
                )
                return 0 if taken else None
            if self._take_first_free is None:
                self._take_first_free = self.client.register_script(_TAKE_FIRST_FREE)
            keys = [self.key(priority, bulk, slot) for slot in range(self.slots)]
            slot = int(self._take_first_free(keys=keys, args=[self._milliseconds]))
        except redis.RedisError:
            return 0  # "not latched": ringing twice is harmless, not ringing is not
        return slot if slot >= 0 else None

    def release(self, priority: Priority, bulk: bool, slot: int = 0) -> None:
        """Let the next event of this kind ring (its expiry does so if Redis is away)."""
        try:
            self.client.delete(self.key(priority, bulk, slot))
        except redis.RedisError as exc:
            log.warning("doorbell.latch_release_failed", error=type(exc).__name__)

    def close(self) -> None:
        self._take_first_free = None  # (bound to the client)
        if self._client is not None:
            self._client.close()
            self._client = None


#: Sets the first of KEYS that is not set (for ARGV[1] milliseconds); its index from 0,
#: or -1 when all are set.
_TAKE_FIRST_FREE = """
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, '1', 'NX', 'PX', ARGV[1]) then
    return i - 1
  end
end
return -1
"""


class Breaker:
    """Stops ringing for ``pause`` seconds after a failed ring.

    After the pause one ring is let through; if it fails too, the pause starts again.
    Logs ``doorbell.skipping`` when it opens and ``doorbell.resumed`` (with how many
    rings it skipped) when a ring gets through again.
    """

    def __init__(self, pause: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.pause = pause
        self._clock = clock
        self._until = 0.0
        self._open = False
        self._lock = threading.Lock()
        #: Rings skipped since the breaker last opened.
        self.skipped = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def allows(self) -> bool:
        """Whether to try a ring now; counts the ring as skipped if not."""
        if self._clock() >= self._until:
            return True
        with self._lock:
            self.skipped += 1
        return False

    def failed(self, error: str) -> None:
        with self._lock:
            self._until = self._clock() + self.pause
            if self._open:
                return
            self._open = True
            self.skipped = 0
        log.warning("doorbell.skipping", seconds=self.pause, error=error)

    def succeeded(self) -> None:
        if not self._open:
            return
        with self._lock:
            if not self._open:
                return
            self._open = False
            skipped = self.skipped
        log.info("doorbell.resumed", skipped=skipped)


class Doorbell:
    """Enqueues fan-out and delivery tasks on the right queues."""

    def __init__(
        self, app_factory: Callable[[], Celery], latch: Latch, breaker: Breaker | None = None
    ) -> None:
        self._app_factory = app_factory
        self._app: Celery | None = None
        self.latch = latch
        self.breaker = breaker or Breaker(5.0)

    @classmethod
    def for_settings(cls, settings: Settings) -> Doorbell:
        """The doorbell of ``settings``' broker, with its short timeouts and breaker."""
        from dispatcher.engine.broker import ringing_app

        timeout = settings.ring_timeout_seconds
        return cls(
            lambda: ringing_app(settings),
            Latch(
                settings.redis_url,
                settings.redis_prefix,
                settings.broker_url,
                timeout=timeout,
                slots=settings.drain_slots(),
            ),
            Breaker(settings.ring_pause_seconds),
        )

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
        *,
        shadow: str | None = None,
        countdown: float | None = None,
        **ids: Any,
    ) -> bool:
        if not self.breaker.allows():
            return False
        try:
            self.app.send_task(
                name,
                args=args,
                kwargs=kwargs,
                queue=queue,
                retry=True,
                retry_policy=PUBLISH_RETRY,
                shadow=shadow,
                countdown=countdown,
            )
        except Exception as exc:  # kombu raises several unrelated types when Redis is away
            log.warning("doorbell.failed", task=name, queue=queue, error=type(exc).__name__, **ids)
            self.breaker.failed(type(exc).__name__)
            return False
        self.breaker.succeeded()
        return True

    def fanout(
        self,
        event_id: int | None,
        priority: Priority | str,
        *,
        bulk: bool = False,
        type_name: str | None = None,
        recipients: int | None = None,
        via: str | None = None,
    ) -> bool:
        """Ask a worker to fan out event ``event_id`` (if given) and every other due event
        of its kind; nothing is sent while a draining task holds the kind's latch.

        ``type_name``, ``recipients`` and ``via`` (who rang: ``swept``...) only name the
        task in Flower (:func:`fanout_label`).
        Returns False only when the broker refused the message (the sweep rings later).
        """
        priority = Priority(priority)
        if self.breaker.is_open and not self.breaker.allows():
            return False  # neither the latch nor the broker is asked: the sweep rings
        slot = self.latch.take(priority, bulk)
        if slot is None:
            return True
        label = fanout_label(event_id, type_name, recipients, via)
        sent = self._send_drain(event_id, priority, bulk, holds_latch=True, label=label, slot=slot)
        if not sent:
            self.latch.release(priority, bulk, slot)
        return sent

    def fanout_at(
        self,
        event_id: int,
        priority: Priority | str,
        countdown: float,
        *,
        type_name: str | None = None,
    ) -> bool:
        """Ask a worker to fan out scheduled event ``event_id`` alone, ``countdown``
        seconds from now (:mod:`dispatcher.engine.on_time`: at most a second or so; the
        row keeps the time). It bypasses the drains' latch, which it would otherwise hold
        shut for the countdown. Returns False when the broker refused it."""
        label = fanout_label(event_id, type_name, None, "scheduled")
        queue = names.for_priority(Priority(priority))
        return self._send(
            names.FANOUT, [event_id], queue, shadow=label, countdown=countdown, event_id=event_id
        )

    def relay(
        self, priority: Priority | str, *, bulk: bool, holds_latch: bool, slot: int = 0
    ) -> bool:
        """Ring a draining fan-out task from a drain: its successor (which takes over
        the latch slot it holds) or a helper (which holds none)."""
        priority = Priority(priority)
        label = f"fanout drain {priority.value}{' campaign' if bulk else ''}"
        sent = self._send_drain(
            None, priority, bulk, holds_latch=holds_latch, label=label, slot=slot
        )
        if not sent and holds_latch:
            # Nobody would release it: let notify ring.
            self.latch.release(priority, bulk, slot)
        return sent

    def _send_drain(
        self,
        event_id: int | None,
        priority: Priority,
        bulk: bool,
        *,
        holds_latch: bool,
        label: str,
        slot: int = 0,
    ) -> bool:
        drain = {
            "priority": priority.value,
            "bulk": bulk,
            "holds_latch": holds_latch,
            "slot": slot,
        }
        queue = names.for_priority(priority, bulk=bulk)
        return self._send(
            names.FANOUT, [event_id], queue, {"drain": drain}, shadow=label, event_id=event_id
        )

    def deliver(
        self,
        delivery_ids: Sequence[int],
        priority: Priority | str,
        *,
        bulk: bool = False,
        batch_size: int = 500,
        channel: str | None = None,
        types: Sequence[str] = (),
        via: str | None = None,
    ) -> int:
        """Ask workers to send these deliveries, ``batch_size`` per task; returns tasks sent.

        ``channel``, ``types`` and ``via`` only name the tasks in Flower
        (:func:`deliver_label`)."""
        queue = names.for_priority(priority, bulk=bulk)
        sent = 0
        ids = list(delivery_ids)
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            label = deliver_label(channel, types, len(chunk), via)
            if self._send(
                names.DELIVER,
                [chunk],
                queue,
                shadow=label,
                first_delivery_id=chunk[0],
                count=len(chunk),
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


# -- What Flower shows -----------------------------------------------------------------
# A task's display name (Celery's ``shadow``) says what it carries, so an operator can
# tell an email batch from a fan-out at a glance. Names hold types, channels, ids and
# counts only: never an address, a subscriber id or payload data.


def deliver_label(
    channel: str | None, types: Sequence[str] = (), count: int = 1, via: str | None = None
) -> str:
    """``deliver email ticket_created x2``; ``deliver email x3 (swept)``."""
    parts = ["deliver", channel or "any"]
    if len(types) == 1:
        parts.append(types[0])
    elif types:
        parts.append(f"{types[0]}+{len(types) - 1}")
    parts.append(f"x{count}")
    if via:
        parts.append(f"({via})")
    return " ".join(parts)


def fanout_label(
    event_id: int | None,
    type_name: str | None = None,
    recipients: int | None = None,
    via: str | None = None,
) -> str:
    """``fanout ticket_created → 3``; ``fanout event 12 (swept)``."""
    parts = ["fanout", type_name or (f"event {event_id}" if event_id is not None else "due")]
    if recipients is not None:
        parts.append(f"→ {recipients}")
    if via:
        parts.append(f"({via})")
    return " ".join(parts)
