"""The warm-up a worker process runs before taking work: a fan-out rehearsal that leaves
nothing behind, and a drain that does not wait on another drain's event."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy import func, select, text

from dispatcher import Dispatcher, EventStatus
from dispatcher.db.models import Delivery, Event, Notification, Subscriber, table
from dispatcher.engine.fanout import fanout
from dispatcher.engine.rehearsal import rehearse
from tests.conftest import runtime

PAYOUT = {"payout_id": 1, "amount": "10.00"}


def counts(d: Dispatcher) -> dict[str, int]:
    with d.store.session() as s:
        return {
            model.__name__: int(s.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Subscriber, Event, Notification, Delivery)
        }


def test_a_rehearsal_leaves_no_rows_and_no_log_lines(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher.subscribers.upsert("ana")
    before = counts(dispatcher)
    rt = runtime(dispatcher)
    with caplog.at_level(logging.DEBUG, logger="dispatcher"):
        assert rehearse(dispatcher.store, dispatcher.catalog, rt.deliverer, inline_limit=100)
    assert counts(dispatcher) == before
    assert [r for r in caplog.records if r.name == "dispatcher"] == []
    # The logger is not left silenced.
    with caplog.at_level(logging.INFO, logger="dispatcher"):
        dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    assert any("event.stored" in r.getMessage() for r in caplog.records)


def test_a_warmed_worker_fans_out_its_first_event(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("ana")
    rt = runtime(dispatcher)
    rt.warm()
    receipt = dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    result = rt.drain("medium", first=receipt.id, holds_latch=False)
    assert result.events == 1
    with dispatcher.store.session() as s:
        assert s.scalar(select(Event.status).where(Event.id == receipt.id)) == (
            EventStatus.FANNED_OUT
        )


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_drain_leaves_an_event_another_transaction_holds_without_waiting(
    dispatcher: Dispatcher,
) -> None:
    dispatcher.subscribers.upsert("ana")
    receipt = dispatcher.notify("payout_sent", to="ana", data=PAYOUT)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with dispatcher.store.engine.begin() as conn:
            lock = text(f"SELECT id FROM {table(Event).name} WHERE id = :id FOR UPDATE")
            conn.execute(lock, {"id": receipt.id})
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        rt = runtime(dispatcher)
        started = time.monotonic()
        result = fanout(
            dispatcher.store, dispatcher.catalog, rt.doorbell, receipt.id, skip_locked=True
        )
        assert time.monotonic() - started < 2.0  # did not wait for the holder
        assert not result.done
    finally:
        release.set()
        holder.join()
    # Once it is free, it is fanned out as usual.
    assert fanout(dispatcher.store, dispatcher.catalog, rt.doorbell, receipt.id).done
