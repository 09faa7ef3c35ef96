"""Scheduled sends go out within a second of their ``send_at``: beat's 1-second
``dispatcher.scheduled_tick`` rings each event due within the next second with a
countdown to its time (the 5-second sweep alone was up to 5 s late)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from freezegun import freeze_time
from sqlalchemy import select

from dispatcher import Dispatcher
from dispatcher.clock import utcnow
from dispatcher.db.models import Event
from dispatcher.engine.on_time import ring_due_soon
from tests.conftest import Beat, StartWorker, runtime, wait_for

TICKET = {
    "ticket_id": 3,
    "event_name": "Final",
    "seller": "Luis",
    "amount": "45.00",
    "currency": "EUR",
}


def fanned_out_at(d: Dispatcher, event_id: int) -> datetime | None:
    with d.store.session() as s:
        return s.scalar(select(Event.fanned_out_at).where(Event.id == event_id))


def test_only_pending_scheduled_direct_events_within_a_second_either_side_are_rung(
    dispatcher: Dispatcher,
) -> None:
    d = dispatcher
    d.subscribers.upsert("u1")
    at = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    with freeze_time(at - timedelta(minutes=5)):
        soon = d.notify("ticket_created", to="u1", data=TICKET, send_at=at + timedelta(seconds=0.6))
        just_due = d.notify("ticket_created", to="u1", data=TICKET, send_at=at)
        later = d.notify("ticket_created", to="u1", data=TICKET, send_at=at + timedelta(seconds=3))
        long_due = d.notify(
            "ticket_created", to="u1", data=TICKET, send_at=at - timedelta(seconds=9)
        )
        cancelled = d.notify("ticket_created", to="u1", data=TICKET, send_at=at)
    d.cancel(cancelled.id)
    assert all(e.id for e in (soon, just_due, later, long_due))
    # Two of the five: not the one due in 3 s (next ticks), not the one due 9 s ago (the
    # sweep's), not the cancelled one.
    assert ring_due_soon(d.store, runtime(d).doorbell, now=at).rung == 2
    with freeze_time(at + timedelta(seconds=1)):
        # Fan-out before its time does nothing; at its time it runs.
        assert runtime(d).fanout(later.id).done is False
    with freeze_time(at + timedelta(seconds=3)):
        assert runtime(d).fanout(later.id).done is True


def test_a_scheduled_send_fans_out_within_a_second_of_its_time_with_a_real_beat(
    dispatcher: Dispatcher, start_worker: StartWorker, tmp_path: Path
) -> None:
    d = dispatcher
    start_worker()
    d.subscribers.upsert("u1")
    # Warm both pool processes first (a process's first event loads the catalog and
    # templates: the cold first event is not what this measures). Plain fan-out tasks
    # sent at once go one to each idle process.
    warm = [
        d.notify("ticket_created", to="u1", data={**TICKET, "ticket_id": 100 + i}) for i in range(4)
    ]
    for event in warm:
        runtime(d).doorbell.fanout_at(event.id, "high", 0.0)
    for event in warm:
        wait_for(lambda e=event: fanned_out_at(d, e.id), timeout=60)
    beat = Beat(d.settings, tmp_path / "beat.log")
    try:
        beat_started = utcnow()
        events = [
            d.notify(
                "ticket_created",
                to="u1",
                data={**TICKET, "ticket_id": i + 1},
                send_at=beat_started + timedelta(seconds=2.3 + 0.7 * i),
            )
            for i in range(4)
        ]
        for event in events:
            wait_for(lambda e=event: fanned_out_at(d, e.id), timeout=30)
    finally:
        beat.stop()
    assert "Sending due task scheduled_tick" in beat.log()
    lateness = []
    for event in events:
        done = fanned_out_at(d, event.id)
        with d.store.session() as s:
            send_at = s.scalar(select(Event.send_at).where(Event.id == event.id))
        assert done is not None and send_at is not None
        lateness.append((done - send_at).total_seconds())
    assert all(0 <= late < 1.0 for late in lateness), lateness
    assert len(d.inbox("u1")) == 8
