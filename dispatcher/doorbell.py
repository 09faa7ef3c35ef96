"""The doorbell: Celery messages that only say "look at row X".

Ringing never fails the caller: the rows are already committed, and the beat sweep
re-rings anything that is due but unclaimed, so a broker outage delays work but loses
none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from dispatcher import log, queues
from dispatcher.enums import Priority

if TYPE_CHECKING:
    from celery import Celery

#: Task names, stable and readable in Flower.
FANOUT = "dispatcher.fanout"
DELIVER = "dispatcher.deliver"
SWEEP = "dispatcher.sweep"
PURGE = "dispatcher.purge"

#: Publishing gives up quickly: the sweep is the real guarantee.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5}

_PENDING_KEY = "dispatcher.doorbell.pending"


class Doorbell:
    """Enqueues fan-out and delivery tasks on the right queues."""

    def __init__(self, app_factory: Callable[[], Celery]) -> None:
        self._app_factory = app_factory
        self._app: Celery | None = None

    @property
    def app(self) -> Celery:
        if self._app is None:
            self._app = self._app_factory()
        return self._app

    def _send(self, name: str, args: list[Any], queue: str, **ids: Any) -> bool:
        try:
            self.app.send_task(name, args=args, queue=queue, retry=True, retry_policy=PUBLISH_RETRY)
        except Exception as exc:  # kombu raises several unrelated types when Redis is away
            log.warning("doorbell.failed", task=name, queue=queue, error=type(exc).__name__, **ids)
            return False
        return True

    def fanout(self, event_id: int, priority: Priority | str, *, bulk: bool = False) -> bool:
        """Ask a worker to fan out event ``event_id``."""
        queue = queues.for_priority(priority, bulk=bulk)
        return self._send(FANOUT, [event_id], queue, event_id=event_id)

    def deliver(
        self,
        delivery_ids: Sequence[int],
        priority: Priority | str,
        *,
        bulk: bool = False,
        batch_size: int = 500,
    ) -> int:
        """Ask workers to send these deliveries, ``batch_size`` per task; returns tasks sent."""
        queue = queues.for_priority(priority, bulk=bulk)
        sent = 0
        ids = list(delivery_ids)
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            if self._send(DELIVER, [chunk], queue, first_delivery_id=chunk[0], count=len(chunk)):
                sent += 1
        return sent

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
