"""``await d.anotify(...)``: notify's semantics without blocking the event loop."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text

from dispatcher import Dispatcher, PayloadValidationError
from dispatcher.db.models import Event

TICKET = {
    "ticket_id": 5,
    "event_name": "Final",
    "seller": "Luis",
    "amount": "45.00",
    "currency": "EUR",
}
#: How long another connection holds the events table while notify runs.
HOLD_SECONDS = 0.6


def hold_events_table(d: Dispatcher, started: threading.Event) -> None:
    """Make the database slow: hold the write lock (SQLite) or a lock on ``events``
    (PostgreSQL) for a while."""
    with d.store.session(write=True) as session:
        if d.store.is_postgres:
            session.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
        started.set()
        time.sleep(HOLD_SECONDS)


async def largest_gap(call: Callable[[], Awaitable[object]]) -> tuple[float, float, int]:
    """Run ``call`` next to a 5 ms ticker: (seconds the call took, the ticker's largest
    gap between ticks, ticks)."""
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while True:
            ticks.append(time.perf_counter())  # also once after a stall, to measure it
            if done.is_set():
                return
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    start = time.perf_counter()
    try:
        await call()
    finally:
        took = time.perf_counter() - start
        done.set()
        await task
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    return took, max(gaps), len(ticks)


def run_slow(d: Dispatcher, call: Callable[[], Awaitable[object]]) -> tuple[float, float, int]:
    started = threading.Event()
    holder = threading.Thread(target=hold_events_table, args=(d, started))
    holder.start()
    started.wait(5)
    try:
        return asyncio.run(largest_gap(call))
    finally:
        holder.join()


def test_the_loop_keeps_running_while_notify_waits_on_the_database(
    dispatcher: Dispatcher,
) -> None:
    dispatcher.subscribers.upsert("u1")

    async def call() -> object:
        return await dispatcher.anotify("ticket_created", to=["u1"], data=TICKET, actor="u2")

    took, gap, ticks = run_slow(dispatcher, call)
    assert took >= HOLD_SECONDS / 2  # the database really was slow
    assert gap < 0.15, f"the loop stalled {gap:.3f}s while notify ran {took:.3f}s"
    assert ticks >= 10
    with dispatcher.store.session() as s:
        (event,) = s.query(Event).all()
        assert (event.type, event.recipients, event.actor) == ("ticket_created", ["u1"], "u2")


def test_the_same_check_blocks_the_loop_with_plain_notify(dispatcher: Dispatcher) -> None:
    """The measure above can fail: calling the sync ``notify`` from a coroutine stalls
    the ticker for as long as the database holds it."""
    dispatcher.subscribers.upsert("u1")

    async def call() -> object:
        return dispatcher.notify("ticket_created", to=["u1"], data=TICKET)

    took, gap, _ = run_slow(dispatcher, call)
    assert gap >= HOLD_SECONDS / 2 and took >= HOLD_SECONDS / 2


def test_many_recipients_do_not_stall_the_loop(dispatcher: Dispatcher) -> None:
    """CPU-bound work (checking and upserting 1,000 inline recipients) shares the GIL
    with the loop, so the ticker slows down; it must not stop for the whole call (on a
    machine shared with other test runs, a single gap can reach a few hundred ms)."""

    # The first use of a locale unpickles Babel's data, holding the GIL for a while
    # (once per process): warm it, as any running app has.
    dispatcher.notify("ticket_created", to=[{"id": "warm", "locale": "es"}], data=TICKET)

    async def call() -> object:
        people = [{"id": f"p{i}", "locale": "es"} for i in range(1000)]
        return await dispatcher.anotify("ticket_created", to=people, data=TICKET)

    took, gap, ticks = asyncio.run(largest_gap(call))
    assert gap < max(0.15, took / 3), f"the loop stalled {gap:.3f}s while notify ran {took:.3f}s"
    assert ticks >= 5


def test_errors_are_the_same(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1")
    with pytest.raises(PayloadValidationError, match="<root>: must be an object"):
        asyncio.run(dispatcher.anotify("ticket_created", to="u1", data=[1, 2]))  # type: ignore[arg-type]
