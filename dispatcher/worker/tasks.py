"""The Celery tasks: thin wrappers over :class:`~dispatcher.worker.runtime.Runtime` methods.

Each worker process builds its own runtime (database engine, event loop, channel
connections) after fork, on first use, from the ``DISPATCHER_*`` environment.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, Task, signals
from sqlalchemy.exc import OperationalError

from dispatcher import log, names
from dispatcher.dispatcher import Dispatcher
from dispatcher.errors import DeliveriesFailedError, ValidationError
from dispatcher.worker.outcome import verdict
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
    # A failed delivery is an outcome, not a bug: one log line, no traceback.
    "throws": (DeliveriesFailedError,),
}


def announce(task: Task, label: str, result: dict[str, int], started: float) -> None:
    """Show a housekeeping task that did something in Flower, under ``label``.

    Housekeeping tasks run with ``send_events=False``: Celery reads that flag when the
    worker receives the message, before the task runs, so it cannot depend on what the
    run finds. An idle sweep every 5 seconds would otherwise add 720 entries an hour to
    Flower's memory and push real work out. A run that did something sends the two
    events Flower needs to list it (received, succeeded) itself.
    """
    fields: dict[str, Any] = {"retry": True, "retry_policy": {"max_retries": 1}}
    try:
        task.send_event("task-received", name=label, args="()", kwargs="{}", retries=0, **fields)
        task.send_event(
            "task-succeeded", result=repr(result), runtime=time.monotonic() - started, **fields
        )
    except Exception as exc:  # monitoring must never fail the work
        log.warning("task.announce_failed", task=label, error=type(exc).__name__)


def register_tasks(app: Celery) -> None:
    """Add ``dispatcher.fanout``, ``dispatcher.deliver``, ``dispatcher.sweep`` and
    ``dispatcher.purge`` to ``app``."""

    @app.task(name=names.FANOUT, ignore_result=True, **_RETRY)  # type: ignore[untyped-decorator]
    def fanout(event_id: int | None, drain: dict[str, Any] | None = None) -> dict[str, int]:
        if drain is None:  # a message from before draining existed
            if event_id is None:
                raise ValidationError("dispatcher.fanout needs an event id or drain options")
            result = current_runtime().fanout(event_id)
            if (problem := verdict(result.sent)) is not None:
                raise problem
            return {"notifications": result.notifications, "deliveries": result.deliveries}
        drained = current_runtime().drain(
            drain["priority"],
            bulk=bool(drain["bulk"]),
            first=event_id,
            holds_latch=bool(drain["holds_latch"]),
            slot=int(drain.get("slot", 0)),  # (a message from before slots: the only one)
        )
        if (problem := verdict(drained.sent)) is not None:
            raise problem  # the rows are written; this only shows what inline sends did
        return {
            "events": drained.events,
            "notifications": drained.notifications,
            "deliveries": drained.deliveries,
            "failed": drained.failed,
        }

    @app.task(name=names.DELIVER, ignore_result=True, **_RETRY)  # type: ignore[untyped-decorator]
    def deliver(delivery_ids: list[int]) -> dict[str, int]:
        report = current_runtime().deliver(delivery_ids)
        if (problem := verdict(report)) is not None:
            raise problem
        return {"claimed": report.claimed, **report.counts}

    @app.task(name=names.CAMPAIGN_CHUNK, ignore_result=True, **_RETRY)  # type: ignore[untyped-decorator]
    def campaign_chunk(run_id: int) -> dict[str, Any]:
        result = current_runtime().campaign_chunk(run_id)
        return {"run_id": run_id, "created": result.created, "status": result.status}

    @app.task(name=names.CAMPAIGN_TICK, ignore_result=True, expires=30)  # type: ignore[untyped-decorator]
    def campaign_tick() -> dict[str, int]:
        result = current_runtime().campaign_tick()
        return {"started": len(result.started), "rung": len(result.rung)}

    @app.task(name=names.FLUSH_DIGESTS, ignore_result=True, expires=60, **_RETRY)  # type: ignore[untyped-decorator]
    def flush_digests() -> dict[str, int]:
        result = current_runtime().flush_digests()
        return {"due": result.due, "dropped": result.dropped, **result.report.counts}

    @app.task(name=names.SCHEDULED_TICK, ignore_result=True, expires=5)  # type: ignore[untyped-decorator]
    def scheduled_tick() -> dict[str, int]:
        return {"rung": current_runtime().scheduled_tick().rung}

    @app.task(  # type: ignore[untyped-decorator]
        name=names.SWEEP, bind=True, ignore_result=True, expires=60, send_events=False
    )
    def sweep(self: Task) -> dict[str, int]:
        started = time.monotonic()
        runtime = current_runtime()
        result = runtime.sweep()
        runtime.mark_swept()
        out = {"events": result.events, "deliveries": result.deliveries}
        if result.events or result.deliveries:
            label = f"sweep → {result.events} events, {result.deliveries} deliveries"
            announce(self, label, out, started)
        return out

    @app.task(  # type: ignore[untyped-decorator]
        name=names.PURGE, bind=True, ignore_result=True, expires=3600, send_events=False
    )
    def purge(self: Task) -> dict[str, int]:
        started = time.monotonic()
        out = {"events": current_runtime().purge().events}
        if out["events"]:
            announce(self, f"purge → {out['events']} events", out, started)
        return out


def _start(**_: Any) -> None:
    """A new pool process: forget the parent's runtime, then build and warm its own
    before it takes work (:meth:`Runtime.warm`)."""
    _reset()
    try:
        runtime = current_runtime()
    except Exception as exc:  # configuration errors surface in the first task, as before
        log.warning("worker.warm_failed", step="runtime", error=type(exc).__name__)
        return
    runtime.warm()


signals.worker_process_init.connect(_start, weak=False)
signals.worker_process_shutdown.connect(_reset, weak=False)
signals.worker_shutdown.connect(_reset, weak=False)
log.logger.debug("tasks module loaded")
