"""Cancel and reschedule an event before it fans out: one conditional update, so it and
fan-out never both win; a precise error when it is too late or the event is unknown."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from dispatcher import (
    Dispatcher,
    EventNotPendingError,
    EventStatus,
    NotFoundError,
    ValidationError,
)
from dispatcher.cli import main
from dispatcher.db.models import Event, Notification
from tests.conftest import runtime, settings_env

TICKET = {
    "ticket_id": 3,
    "event_name": "Final",
    "seller": "Luis",
    "amount": "45.00",
    "currency": "EUR",
}


def later(hours: int = 2) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def status(d: Dispatcher, event_id: int) -> tuple[str, datetime, int]:
    with d.store.session() as s:
        event = s.get(Event, event_id)
        assert event is not None
        notified = s.scalar(
            select(func.count()).select_from(Notification).where(Notification.event_id == event_id)
        )
        return str(event.status), event.send_at, int(notified or 0)


@pytest.fixture
def d(dispatcher: Dispatcher) -> Dispatcher:
    dispatcher.subscribers.upsert("u1")
    return dispatcher


def test_cancel_by_id_or_key_before_fan_out(d: Dispatcher) -> None:
    first = d.notify("ticket_created", to="u1", data=TICKET, send_at=later())
    change = d.cancel(first.id)
    assert (change.id, change.status, change.changed) == (first.id, EventStatus.CANCELLED, True)
    assert d.cancel(first.id).changed is False  # twice is harmless
    second = d.notify("ticket_created", to="u1", data=TICKET, send_at=later(), idempotency_key="k")
    assert d.cancel(idempotency_key="k").id == second.id
    with d.store.session() as s:
        s.execute(Event.__table__.update().values(send_at=datetime.now(UTC)))
    assert runtime(d).fanout(first.id).done is False
    assert status(d, first.id)[::2] == ("cancelled", 0)
    assert "cancelled" in "\n".join(d.explain(first.id).lines())


def test_too_late_unknown_or_ambiguous_is_a_precise_error(d: Dispatcher) -> None:
    receipt = d.notify("ticket_created", to="u1", data=TICKET)
    runtime(d).fanout(receipt.id)
    with pytest.raises(EventNotPendingError) as info:
        d.cancel(receipt.id)
    assert str(info.value) == (
        f"cannot cancel event {receipt.id}: it has already fanned out (its notifications exist)"
    )
    assert info.value.status == "fanned_out"
    with pytest.raises(EventNotPendingError, match="reschedule"):
        d.reschedule(receipt.id, send_at=later())
    with pytest.raises(NotFoundError, match="no event 999"):
        d.cancel(999)
    with pytest.raises(NotFoundError, match="no event with key 'nope'"):
        d.reschedule(idempotency_key="nope", send_at=later())
    with pytest.raises(ValidationError, match="exactly one"):
        d.cancel()
    with pytest.raises(ValidationError, match="exactly one"):
        d.cancel(receipt.id, idempotency_key="k")
    with pytest.raises(ValidationError, match="timezone-aware"):
        d.reschedule(receipt.id, send_at=datetime(2030, 1, 1))
    assert status(d, receipt.id)[::2] == ("fanned_out", 1)


def test_reschedule_moves_it_and_a_cancelled_one_stays_cancelled(d: Dispatcher) -> None:
    receipt = d.notify("ticket_created", to="u1", data=TICKET, send_at=later(1))
    target = later(5).replace(microsecond=0)
    change = d.reschedule(receipt.id, send_at=target)
    assert change.send_at == target and change.status == EventStatus.PENDING
    assert status(d, receipt.id)[1] == target
    assert runtime(d).fanout(receipt.id).done is False  # not due yet
    # Into the past: due now, and fan-out takes it.
    d.reschedule(receipt.id, send_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert runtime(d).fanout(receipt.id).done is True
    assert status(d, receipt.id)[::2] == ("fanned_out", 1)

    other = d.notify("ticket_created", to="u1", data=TICKET, send_at=later())
    d.cancel(other.id)
    with pytest.raises(EventNotPendingError, match="it was cancelled"):
        d.reschedule(other.id, send_at=later())


def race(d: Dispatcher, event_id: int) -> dict[str, object]:
    """Cancel and fan out ``event_id`` at the same moment from two threads."""
    barrier = threading.Barrier(2)
    result: dict[str, object] = {}

    def cancel() -> None:
        barrier.wait()
        try:
            result["cancel"] = d.cancel(event_id).changed
        except EventNotPendingError:
            result["cancel"] = "too late"

    def fanout() -> None:
        barrier.wait()
        result["fanout"] = runtime(d).fanout(event_id).done

    threads = [threading.Thread(target=cancel), threading.Thread(target=fanout)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return result


def test_cancel_racing_fan_out_has_exactly_one_winner(d: Dispatcher) -> None:
    for _ in range(12):
        receipt = d.notify("ticket_created", to="u1", data=TICKET)
        result = race(d, receipt.id)
        state, _, notified = status(d, receipt.id)
        if result["cancel"] is True:
            assert (state, notified, result["fanout"]) == ("cancelled", 0, False)
        else:
            assert (state, notified, result["cancel"], result["fanout"]) == (
                "fanned_out",
                1,
                "too late",
                True,
            )


def test_cli_cancel_and_reschedule(d: Dispatcher) -> None:
    runner, env = CliRunner(), settings_env(d.settings)
    receipt = d.notify("ticket_created", to="u1", data=TICKET, send_at=later(), idempotency_key="c")
    moved = runner.invoke(
        main,
        [
            "events",
            "reschedule",
            str(receipt.id),
            "--send-at",
            "2099-04-25T20:00:00+02:00",
            "--json",
        ],
        env=env,
    )
    assert moved.exit_code == 0, moved.output
    out = json.loads(moved.output)
    assert out["send_at"] == "2099-04-25T18:00:00+00:00" and out["status"] == "pending"
    cancelled = runner.invoke(main, ["events", "cancel", "--key", "c", "--json"], env=env)
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.output)["status"] == "cancelled"
    plain = runner.invoke(main, ["events", "cancel", str(receipt.id)], env=env)
    assert plain.output.startswith(f"event {receipt.id} already cancelled")
    missing = runner.invoke(main, ["events", "cancel", "424242"], env=env)
    assert missing.exit_code == 2 and "no event 424242" in missing.output
    naive = runner.invoke(main, ["events", "reschedule", "1", "--send-at", "tomorrow"], env=env)
    assert naive.exit_code == 2 and "--send-at" in naive.output
    neither = runner.invoke(main, ["events", "cancel"], env=env)
    assert neither.exit_code == 2 and "exactly one" in neither.output
