"""Draining: one fan-out task fans out every due event of its kind.

The doorbell coalesces fan-out rings (see :mod:`dispatcher.engine.doorbell`): a task rung by
``notify`` holds its kind's latch and fans out, in shared transactions, every event
that is due until none is left. This module is that loop; :mod:`dispatcher.engine.fanout`
turns events into rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dispatcher import log
from dispatcher.catalog import Catalog
from dispatcher.db.engine import Store
from dispatcher.engine.bulk_fanout import BulkFanout
from dispatcher.engine.delivery import Deliverer, DeliverReport
from dispatcher.engine.doorbell import Doorbell
from dispatcher.engine.failed_events import is_transient, record_failure
from dispatcher.engine.fanout import FanoutResult, due_event_ids, fanout, fanout_due
from dispatcher.enums import Priority

#: A draining task stops after this many events or seconds and rings a successor, so
#: that work on other queues gets a turn between its batches.
DRAIN_EVENTS = 200
DRAIN_SECONDS = 1.0
#: Due events a drain fans out per transaction: one set of statements and one commit
#: for all of them. Small, so that on SQLite a writer never waits long behind it.
DRAIN_BATCH = 16


@dataclass(frozen=True)
class DrainResult:
    #: Events this drain fanned out, and the rows it created.
    events: int
    notifications: int
    deliveries: int
    #: It stopped at its limit and rang a successor to go on.
    handed_on: bool
    #: Events it marked ``failed`` (see :mod:`dispatcher.engine.failed_events`).
    failed: int = 0
    #: What its inline sends did, all batches together (None if it sent nothing inline).
    sent: DeliverReport | None = None


def drain(
    store: Store,
    catalog: Catalog,
    doorbell: Doorbell,
    priority: Priority,
    *,
    bulk: bool = False,
    first: int | None = None,
    holds_latch: bool = True,
    slot: int = 0,
    batch_size: int = 500,
    deliverer: Deliverer | None = None,
    inline_limit: int = 0,
    in_bulk: BulkFanout | None = None,
    max_events: int = DRAIN_EVENTS,
    max_seconds: float = DRAIN_SECONDS,
) -> DrainResult:
    """Fan out event ``first``, then every due event of ``priority`` (campaign events if
    ``bulk``) until none is left, up to :data:`DRAIN_BATCH` per transaction.

    A drain rung by ``notify`` holds a slot (``slot``) of the doorbell's latch for its
    kind, and while every slot is held, ``notify`` does not ring. It releases its slot
    only once it finds nothing left, and then looks once more: an event whose producer
    found every slot held had committed before that, so the last look finds it. Past
    ``max_events`` or ``max_seconds`` it hands its slot to a successor and stops, so
    that other queues get a turn. Its first full batch rings a helper (a drain without
    a slot) so that a backlog spreads over the workers.

    An event that fails to fan out (a type this worker does not know, data the database
    refuses, a bug) fails its batch; its events are then retried one by one, and the
    one that fails again is skipped for the rest of this drain, so it does not hold up
    the others. That failure is recorded on the event (``fanout.failed``): one that
    would repeat exactly marks it ``failed`` at once, others after a bound (see
    :mod:`dispatcher.engine.failed_events`). Events whose stored data no store can keep are
    marked ``failed`` as they are loaded. A lost connection or a locked database is
    raised, and counted against no event: the task retries.
    """
    started = time.monotonic()
    results: list[FanoutResult] = []
    #: Events skipped for the rest of this drain (they failed alone).
    failed: set[int] = set()
    gave_up: list[int] = []
    options: dict[str, Any] = {
        "batch_size": batch_size,
        "deliverer": deliverer,
        "inline_limit": inline_limit,
        "in_bulk": in_bulk,
    }
    if first is not None:
        _fanout_alone(store, catalog, doorbell, first, results, failed, gave_up, options)
    helped = handed_on = False
    while True:
        if len(results) >= max_events or time.monotonic() - started >= max_seconds:
            doorbell.relay(priority, bulk=bulk, holds_latch=holds_latch, slot=slot)
            handed_on = True
            break
        limit = min(DRAIN_BATCH, max_events - len(results))
        try:
            batch = fanout_due(
                store, catalog, doorbell, priority, bulk=bulk, limit=limit, skip=failed, **options
            )
        except Exception as exc:
            if is_transient(exc):
                raise
            due = due_event_ids(store, priority, bulk, limit, failed)
            if not due:
                raise  # not an event's fault: one by one would fail the same way
            log.warning("fanout.batch_failed", priority=priority.value, error=type(exc).__name__)
            for event_id in due:
                _fanout_alone(store, catalog, doorbell, event_id, results, failed, gave_up, options)
            continue
        if len(batch) == DRAIN_BATCH and not helped:
            doorbell.relay(priority, bulk=bulk, holds_latch=False)
            helped = True
        if batch:
            results.extend(r for r in batch if not r.failed)
            gave_up.extend(r.event_id for r in batch if r.failed)
        elif holds_latch:
            doorbell.latch.release(priority, bulk, slot)
            holds_latch = False  # and look once more
        else:
            break
    return DrainResult(
        len(results),
        sum(r.notifications for r in results),
        sum(r.deliveries for r in results),
        handed_on,
        len(gave_up),
        _merged(r.sent for r in results),
    )


def _merged(reports: Iterable[DeliverReport | None]) -> DeliverReport | None:
    """One report for the inline sends of several transactions (each shared by the
    results of its transaction, so counted once)."""
    seen: dict[int, DeliverReport] = {id(r): r for r in reports if r is not None}
    if not seen:
        return None
    total = DeliverReport()
    for report in seen.values():
        total.merge(report)
    return total


def _fanout_alone(
    store: Store,
    catalog: Catalog,
    doorbell: Doorbell,
    event_id: int,
    results: list[FanoutResult],
    failed: set[int],
    gave_up: list[int],
    options: dict[str, Any],
) -> None:
    """Fan out one event for :func:`drain`: a result if it was done; a failure recorded
    on the event (and raised if it is the database's, not the event's)."""
    try:
        result = fanout(store, catalog, doorbell, event_id, skip_locked=True, **options)
    except Exception as exc:
        if is_transient(exc):
            raise
        failed.add(event_id)
        if record_failure(store, event_id, exc):
            gave_up.append(event_id)
        return
    if result.failed:
        gave_up.append(event_id)
    elif result.done:
        results.append(result)
