"""Retention: finished events older than the retention period are deleted, others kept."""

from __future__ import annotations

from datetime import timedelta

from freezegun import freeze_time
from sqlalchemy import func, select

from dispatcher import Dispatcher
from dispatcher.clock import utcnow
from dispatcher.db.models import Delivery, Event, Notification
from tests.conftest import runtime


def _count(d: Dispatcher, model: type) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_purge_deletes_only_old_finished_events(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1")
    start = utcnow()
    with freeze_time(start - timedelta(days=100)):
        done = dispatcher.notify("payout_sent", to="u1", data={"payout_id": 1, "amount": "1"})
        runtime(dispatcher).fanout(done.id)
        with dispatcher.store.session() as s:
            runtime(dispatcher).deliver(list(s.scalars(select(Delivery.id))))
        stuck = dispatcher.notify("payout_sent", to="u1", data={"payout_id": 2, "amount": "1"})
        runtime(dispatcher).fanout(stuck.id)  # its delivery stays pending: not finished
    fresh = dispatcher.notify("payout_sent", to="u1", data={"payout_id": 3, "amount": "1"})
    assert _count(dispatcher, Event) == 3

    result = runtime(dispatcher).purge()
    assert result.events == 1
    with dispatcher.store.session() as s:
        assert sorted(s.scalars(select(Event.id))) == [stuck.id, fresh.id]
    assert _count(dispatcher, Notification) == 1
    assert _count(dispatcher, Delivery) == 1
    assert runtime(dispatcher).purge().events == 0
