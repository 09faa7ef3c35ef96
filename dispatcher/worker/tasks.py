"""The Celery tasks: thin wrappers over :class:`~dispatcher.worker.runtime.Runtime` methods.

Each worker process builds its own runtime (database engine, event loop, channel
connections) after fork, on first use, from the ``DISPATCHER_*`` environment.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals
from sqlalchemy.exc import OperationalError

from dispatcher import log, names
from dispatcher.dispatcher import Dispatcher
from dispatcher.errors import ValidationError
from dispatcher.worker.runtime import Runtime

_current: Runtime | None = None


def current_runtime() -> Runtime:
    """This process's runtime, created on first use."""
    global _current
    if _current is None:
        _current = Runtime(Dispatcher.from_env())
    return _current


def _reset(**_: Any) -> None:
    global _current
    if _current is not None:
        _current.close()
        _current.dispatcher.close()
    _current = None


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
    """Add ``dispatcher.fanout``, ``dispatcher.deliver``, ``dispatcher.sweep`` and
    ``dispatcher.purge`` to ``app``."""

    @app.task(name=names.FANOUT, ignore_result=True, **_RETRY)  # type: ignore[untyped-decorator]
    def fanout(event_id: int | None, drain: dict[str, Any] | None = None) -> dict[str, int]:
        if drain is None:  # a message from before draining existed
            if event_id is None:
                raise ValidationError("dispatcher.fanout needs an event id or drain options")
            result = current_runtime().fanout(event_id)
            return {"notifications": result.notifications, "deliveries": result.deliveries}
        drained = current_runtime().drain(
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

    @app.task(name=names.DELIVER, ignore_result=True, **_RETRY)  # type: ignore[untyped-decorator]
    def deliver(delivery_ids: list[int]) -> dict[str, int]:
        report = current_runtime().deliver(delivery_ids)
        return {"claimed": report.claimed, **report.counts}

    @app.task(name=names.CAMPAIGN_CHUNK, ignore_result=True, **_RETRY)  # type: ignore[untyped-decorator]
    def campaign_chunk(run_id: int) -> dict[str, Any]:
        result = current_runtime().campaign_chunk(run_id)
        return {"run_id": run_id, "created": result.created, "status": result.status}

    @app.task(name=names.CAMPAIGN_TICK, ignore_result=True, expires=30)  # type: ignore[untyped-decorator]
    def campaign_tick() -> dict[str, int]:
        result = current_runtime().campaign_tick()
        return {"started": len(result.started), "rung": len(result.rung)}

    @app.task(name=names.SWEEP, ignore_result=True, expires=60)  # type: ignore[untyped-decorator]
    def sweep() -> dict[str, int]:
        result = current_runtime().sweep()
        return {"events": result.events, "deliveries": result.deliveries}

    @app.task(name=names.PURGE, ignore_result=True, expires=3600)  # type: ignore[untyped-decorator]
    def purge() -> dict[str, int]:
        return {"events": current_runtime().purge().events}


signals.worker_process_init.connect(_reset, weak=False)
signals.worker_process_shutdown.connect(_reset, weak=False)
signals.worker_shutdown.connect(_reset, weak=False)
log.logger.debug("tasks module loaded")
