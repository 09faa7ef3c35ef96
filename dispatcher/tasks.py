"""The Celery app and its tasks: thin wrappers over :class:`Dispatcher` methods.

Each worker process builds its own :class:`Dispatcher` (database engine, event loop,
channel connections) after fork, on first use.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals
from kombu.entity import Queue
from sqlalchemy.exc import OperationalError

from dispatcher import doorbell, log, queues
from dispatcher.dispatcher import Dispatcher
from dispatcher.errors import ValidationError
from dispatcher.settings import Settings

_current: Dispatcher | None = None


def current_dispatcher() -> Dispatcher:
    """This process's dispatcher, created on first use."""
    global _current
    if _current is None:
        _current = Dispatcher.from_env()
    return _current


def _reset(**_: Any) -> None:
    global _current
    if _current is not None:
        _current.close()
    _current = None


def create_app(settings: Settings | None = None) -> Celery:
    """The Celery app, configured for at-least-once delivery on Redis."""
    settings = settings or Settings.from_env()
    app = Celery("dispatcher", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # At least once: ack after the task ran, requeue if the worker process dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(name) for name in queues.ALL],  # type: ignore[no-untyped-call]
        task_default_queue=queues.for_priority("medium"),
        task_routes={
            doorbell.SWEEP: {"queue": queues.MAINTENANCE},
            doorbell.PURGE: {"queue": queues.MAINTENANCE},
        },
        broker_transport_options={
            # The broker is a doorbell, the database the truth: a message lost with its
            # worker is made good by the beat sweep (pending events and deliveries after
            # DISPATCHER_SWEEP_GRACE_SECONDS, claimed ones when their lease expires), so
            # kombu's emulated acks on Redis (an "unacked" hash and index written and
            # cleared per message, two round trips) buy nothing and cost a third of
            # the worker's per-task CPU.
            "ack_emulation": False,
        },
        broker_connection_retry_on_startup=True,
        # Flower learns of tasks from the workers' events, and turns them on itself
        # while it runs; a "sent" event per publish would double the broker traffic
        # of every notify.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=False,
        timezone="UTC",
        enable_utc=True,
        worker_hijack_root_logger=False,
    )
    register_tasks(app)
    return app


#: Database hiccups (a locked SQLite file, a PostgreSQL failover) are retried soon; if
#: retries run out, the beat sweep picks the rows up again.
_RETRY = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 5,
}


def register_tasks(app: Celery) -> None:
    @app.task(name=doorbell.FANOUT, ignore_result=True, **_RETRY)  # type: ignore[untyped-decorator]
    def fanout(event_id: int | None, drain: dict[str, Any] | None = None) -> dict[str, int]:
        if drain is None:  # a message from before draining existed
            if event_id is None:
                raise ValidationError("dispatcher.fanout needs an event id or drain options")
            result = current_dispatcher().run_fanout(event_id)
            return {"notifications": result.notifications, "deliveries": result.deliveries}
        drained = current_dispatcher().run_drain(
            drain["priority"],
            bulk=bool(drain["bulk"]),
            first=event_id,
            holds_latch=bool(drain["holds_latch"]),
        )
        return {
            "events": drained.events,
            "notifications": drained.notifications,
            "deliveries": drained.deliveries,
            "failed": drained.failed,
        }

    @app.task(name=doorbell.DELIVER, ignore_result=True, **_RETRY)  # type: ignore[untyped-decorator]
    def deliver(delivery_ids: list[int]) -> dict[str, int]:
        report = current_dispatcher().run_deliver(delivery_ids)
        return {"claimed": report.claimed, **report.counts}

    @app.task(name=doorbell.SWEEP, ignore_result=True, expires=60)  # type: ignore[untyped-decorator]
    def sweep() -> dict[str, int]:
        result = current_dispatcher().run_sweep()
        return {"events": result.events, "deliveries": result.deliveries}

    @app.task(name=doorbell.PURGE, ignore_result=True, expires=3600)  # type: ignore[untyped-decorator]
    def purge() -> dict[str, int]:
        return {"events": current_dispatcher().run_purge().events}


signals.worker_process_init.connect(_reset, weak=False)
signals.worker_process_shutdown.connect(_reset, weak=False)
signals.worker_shutdown.connect(_reset, weak=False)
log.logger.debug("tasks module loaded")
