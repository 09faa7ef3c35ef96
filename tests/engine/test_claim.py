"""Fenced claims: a holder whose claim was taken back can neither record nor renew it,
and stops sending what it no longer holds (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from dispatcher import DeliveryStatus, Dispatcher, names
from dispatcher.channels import default_channels
from dispatcher.channels.base import Message, Outcome
from dispatcher.channels.email.channel import EmailChannel
from dispatcher.channels.memory import MemoryChannel
from dispatcher.clock import utcnow
from dispatcher.db.models import Delivery
from dispatcher.engine import sending
from dispatcher.engine.claim import Ticket, claim, renew
from dispatcher.engine.records import Record, write_records
from dispatcher.worker import Runtime
from tests.conftest import runtime

LEASE = timedelta(seconds=30)


def _rows(d: Dispatcher, channel: str | None = None) -> list[Delivery]:
    with d.store.session() as s:
        query = select(Delivery).order_by(Delivery.id)
        if channel:
            query = query.where(Delivery.channel == channel)
        return list(s.scalars(query))


def _one_delivery(d: Dispatcher) -> int:
    d.subscribers.upsert("u1")
    receipt = d.notify("payout_sent", to="u1", data={"payout_id": 1, "amount": "1"})
    runtime(d).fanout(receipt.id)
    [row] = _rows(d)
    return row.id


def test_a_stale_holders_writes_are_refused_after_its_claim_was_taken_back(
    dispatcher: Dispatcher,
) -> None:
    delivery_id = _one_delivery(dispatcher)
    now = utcnow()
    first, second = Ticket(owner="a:1"), Ticket(owner="b:2")
    with dispatcher.store.session(write=True) as s:
        assert claim(s, [delivery_id], now=now, lease=LEASE, ticket=first) == [delivery_id]
    later = now + LEASE + timedelta(seconds=1)
    with freeze_time(later):
        assert runtime(dispatcher).sweep().deliveries == 1  # the lease ran out
    with dispatcher.store.session(write=True) as s:
        assert claim(s, [delivery_id], now=later, lease=LEASE, ticket=second) == [delivery_id]

    # The first holder comes back: it can neither renew nor record.
    with dispatcher.store.session(write=True) as s:
        assert renew(s, [delivery_id], first.token, now=later, lease=LEASE) == []
    sent = Record(delivery_id, DeliveryStatus.SENT, provider_id="first")
    assert write_records(dispatcher.store, [sent], later, token=first.token) == []
    failed = Record(delivery_id, DeliveryStatus.FAILED, "bounced", "first says no")
    assert write_records(dispatcher.store, [failed], later, token=first.token) == []
    [row] = _rows(dispatcher)
    assert (row.status, row.claim_token, row.claimed_by) == (
        DeliveryStatus.SENDING,
        second.token,
        "b:2",
    )
    assert row.attempts == 2

    # The second holder renews and records.
    with dispatcher.store.session(write=True) as s:
        assert renew(s, [delivery_id], second.token, now=later, lease=LEASE) == [delivery_id]
    mine = Record(delivery_id, DeliveryStatus.SENT, provider_id="second")
    assert write_records(dispatcher.store, [mine], later, token=second.token) == [mine]
    [row] = _rows(dispatcher)
    assert (row.status, row.provider_id, row.claim_token) == (DeliveryStatus.SENT, "second", None)
    # ... and the stale holder cannot turn a settled row back either.
    retry = Record(delivery_id, DeliveryStatus.SCHEDULED, "retrying", scheduled_for=later)
    assert write_records(dispatcher.store, [retry], later, token=first.token) == []
    assert _rows(dispatcher)[0].status is DeliveryStatus.SENT


def test_renewing_extends_the_lease_so_the_sweep_leaves_the_rows_alone(
    dispatcher: Dispatcher,
) -> None:
    delivery_id = _one_delivery(dispatcher)
    now = utcnow()
    ticket = Ticket(owner=runtime(dispatcher).liveness.beat())
    with dispatcher.store.session(write=True) as s:
        claim(s, [delivery_id], now=now, lease=LEASE, ticket=ticket)
    renewed_at = now + timedelta(seconds=25)
    with dispatcher.store.session(write=True) as s:
        assert renew(s, [delivery_id], ticket.token, now=renewed_at, lease=LEASE) == [delivery_id]
    with freeze_time(now + LEASE + timedelta(seconds=1)):  # past the first lease only
        assert runtime(dispatcher).sweep().deliveries == 0
    with freeze_time(renewed_at + LEASE + timedelta(seconds=1)):
        assert runtime(dispatcher).sweep().deliveries == 1


def test_the_sweep_takes_back_at_once_the_claims_of_a_process_that_is_gone(
    dispatcher: Dispatcher,
) -> None:
    dispatcher.subscribers.upsert("u1")
    dispatcher.subscribers.upsert("u2")
    for n, who in enumerate(["u1", "u2"]):
        receipt = dispatcher.notify("payout_sent", to=who, data={"payout_id": n, "amount": "1"})
        runtime(dispatcher).fanout(receipt.id)
    dead_row, live_row = (r.id for r in _rows(dispatcher))
    now = utcnow()
    alive = runtime(dispatcher).liveness.beat()
    _hold_take_back_turn(runtime(dispatcher))
    with dispatcher.store.session(write=True) as s:  # a process that was SIGKILLed
        claim(s, [dead_row], now=now, lease=timedelta(seconds=300), ticket=Ticket(owner="gone:1"))
        claim(s, [live_row], now=now, lease=timedelta(seconds=300), ticket=Ticket(owner=alive))
    assert runtime(dispatcher).sweep().deliveries == 1
    dead, live = _rows(dispatcher)
    assert (dead.status, dead.claim_token, dead.claimed_by) == (DeliveryStatus.PENDING, None, None)
    assert (live.status, live.claimed_by) == (DeliveryStatus.SENDING, alive)
    _give_back_take_back_turn(runtime(dispatcher))
    assert runtime(dispatcher).deliver([dead_row]).counts == {"sent": 1}


def test_a_worker_takes_back_a_gone_processs_claims_at_its_next_batch_without_the_sweep(
    dispatcher: Dispatcher,
) -> None:
    # A restarted worker busy with long batches reads the maintenance queue late; its
    # next batch takes back its dead predecessor's rows itself (one process per turn).
    for n, who in enumerate(["u1", "u2"]):
        dispatcher.subscribers.upsert(who)
        receipt = dispatcher.notify("payout_sent", to=who, data={"payout_id": n, "amount": "1"})
        runtime(dispatcher).fanout(receipt.id)
    dead_row, other_row = (r.id for r in _rows(dispatcher))
    with dispatcher.store.session(write=True) as s:  # a process that was SIGKILLed
        claim(s, [dead_row], now=utcnow(), lease=timedelta(seconds=300), ticket=Ticket("gone:7"))
    worker = Runtime(dispatcher)
    try:
        turn = names.take_back_turn(dispatcher.settings.redis_prefix)
        worker.liveness.client.delete(turn)
        assert worker.deliver([other_row]).counts == {"sent": 1}
        # Taken back from the gone process and rung: pending, or already claimed by a
        # live worker (one left running by an earlier test listens on this broker).
        dead = next(r for r in _rows(dispatcher) if r.id == dead_row)
        assert dead.claimed_by != "gone:7"
        assert dead.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.SENT)
        # The turn is held a few seconds by the process that took it (ours, or that
        # left-running worker if it came first), and asked of Redis at most that often.
        assert worker.liveness.client.pttl(turn) > 0
        assert worker.liveness.my_turn() is False
        if dead.status is DeliveryStatus.PENDING:
            assert worker.deliver([dead_row]).counts == {"sent": 1}
    finally:
        worker.close()


class _Stolen(MemoryChannel.standing_in_for(EmailChannel)):  # type: ignore[misc]
    """Sends, and meanwhile another process takes the rest of the batch's claim."""

    store = None

    async def send(self, messages: Sequence[Message]) -> Sequence[Outcome]:
        outcomes = await super().send(messages)
        assert _Stolen.store is not None
        with _Stolen.store.session(write=True) as s:
            s.execute(
                update(Delivery)
                .where(Delivery.channel == "email", Delivery.status == DeliveryStatus.SENDING)
                .values(claim_token="someone-else", claimed_by="other:1")
            )
        return outcomes


def test_a_worker_that_finds_its_claim_gone_stops_sending_the_batch(
    dispatcher: Dispatcher,
) -> None:
    d = Dispatcher(
        dispatcher.settings.model_copy(update={"record_group_size": 3}),
        channels={**default_channels(), "email": _Stolen},
    )
    _Stolen.store = d.store
    worker = Runtime(d)
    try:
        people = [f"p{i}" for i in range(10)]
        for p in people:
            d.subscribers.upsert(p, email=f"{p}@example.com")
        receipt = d.notify("report_generated", to=people, data=_report(d))
        worker.fanout(receipt.id)
        ids = [r.id for r in _rows(d, "email")]
        report = worker.deliver(ids)
        channel = d.channels.get("email")
        assert isinstance(channel, _Stolen)
        assert len(channel.sent) == 3  # one group, then the claim was found gone
        assert report.claimed == 10
        assert report.counts == {}
        rows = _rows(d, "email")
        assert {r.status for r in rows} == {DeliveryStatus.SENDING}
        assert {r.claimed_by for r in rows} == {"other:1"}
    finally:
        worker.close()
        d.close()


def _report(d: Dispatcher) -> dict[str, object]:
    return dict(d.catalog.get("report_generated").example)


def _hold_take_back_turn(worker: Runtime, seconds: int = 60) -> None:
    turn = names.take_back_turn(worker.settings.redis_prefix)
    worker.liveness.client.set(turn, "this test", ex=seconds)


def _give_back_take_back_turn(worker: Runtime) -> None:
    worker.liveness.client.delete(names.take_back_turn(worker.settings.redis_prefix))


def test_a_batch_that_fails_half_way_gives_its_claims_to_the_sweep_at_once(
    dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = Dispatcher(
        dispatcher.settings.model_copy(update={"record_group_size": 3}),
        channels={**default_channels(), "email": MemoryChannel.standing_in_for(EmailChannel)},
    )
    worker = Runtime(d)
    try:
        people = [f"p{i}" for i in range(10)]
        for p in people:
            d.subscribers.upsert(p, email=f"{p}@example.com")
        receipt = d.notify("report_generated", to=people, data=_report(d))
        worker.fanout(receipt.id)
        ids = [r.id for r in _rows(d, "email")]
        # Hold the take-back turn: a worker left running by an earlier test (same
        # database and Redis) must not take the abandoned rows back before our sweep.
        _hold_take_back_turn(worker)
        before = worker.liveness.beat()
        # The database goes away after the first group's outcomes were recorded.
        calls: list[int] = []

        def record(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) > 1:
                raise OperationalError("UPDATE deliveries", {}, Exception("server closed"))
            return write_records(*args, **kwargs)

        monkeypatch.setattr(sending, "write_records", record)
        with pytest.raises(OperationalError):
            worker.deliver(ids)
        monkeypatch.undo()
        held = [r for r in _rows(d, "email") if r.status is DeliveryStatus.SENDING]
        assert len(held) == 7 and {r.claimed_by for r in held} == {before}
        # The process lives on under a new name; the abandoned claims are the sweep's
        # now, not at the end of their lease.
        after = worker.liveness.beat()
        assert after == f"{before}/2"
        # 7 email rows taken back; the 10 in-app rows fan-out left pending are rung too
        # when the test ran past the sweep's grace (a loaded machine).
        assert worker.sweep().deliveries in (7, 17)
        rows = _rows(d, "email")
        assert [r.status for r in rows].count(DeliveryStatus.PENDING) == 7
        assert worker.deliver(ids).counts == {"sent": 7}
        assert {r.claimed_by for r in _rows(d, "email")} == {before, after}
    finally:
        _give_back_take_back_turn(worker)
        worker.close()
        d.close()


def test_a_keep_alive_racing_a_retire_never_revives_the_retired_name(
    dispatcher: Dispatcher,
) -> None:
    # The background thread read the old name just before retire() ran; its late
    # refresh must not set the deleted key again (the sweep would then wait out the
    # key's expiry instead of taking the abandoned claims back at once).
    liveness = runtime(dispatcher).liveness
    before = liveness.beat()
    assert liveness.client.exists(liveness.key(before)) == 1
    liveness.retire(before)
    liveness._refresh(before)
    assert liveness.client.exists(liveness.key(before)) == 0
    assert liveness.gone([before]) == {before}
    after = liveness.beat()
    assert after != before and liveness.client.exists(liveness.key(after)) == 1


def test_a_groups_sent_rows_keep_each_their_provider_id_in_one_fenced_write(
    dispatcher: Dispatcher,
) -> None:
    dispatcher.subscribers.upsert("u1")
    for n in range(3):
        receipt = dispatcher.notify("payout_sent", to="u1", data={"payout_id": n, "amount": "1"})
        runtime(dispatcher).fanout(receipt.id)
    ids = [r.id for r in _rows(dispatcher)]
    now = utcnow()
    mine, theirs = Ticket(owner="a:1"), Ticket(owner="b:2")
    with dispatcher.store.session(write=True) as s:
        claim(s, ids[:2], now=now, lease=LEASE, ticket=mine)
        claim(s, ids[2:], now=now, lease=LEASE, ticket=theirs)
    records = [
        Record(i, DeliveryStatus.SENT, detail=f"250 Q{i}", provider_id=f"<m{i}@x>") for i in ids
    ]
    written = write_records(dispatcher.store, records, now, token=mine.token)
    assert [r.delivery_id for r in written] == ids[:2]
    rows = _rows(dispatcher)
    assert [(r.status, r.provider_id, r.detail) for r in rows] == [
        (DeliveryStatus.SENT, f"<m{ids[0]}@x>", f"250 Q{ids[0]}"),
        (DeliveryStatus.SENT, f"<m{ids[1]}@x>", f"250 Q{ids[1]}"),
        (DeliveryStatus.SENDING, None, None),  # another holder's row is left alone
    ]


def test_an_unfenced_group_of_sent_rows_keeps_each_its_provider_id(
    dispatcher: Dispatcher,
) -> None:
    dispatcher.subscribers.upsert("u1")
    for n in range(3):
        receipt = dispatcher.notify("payout_sent", to="u1", data={"payout_id": n, "amount": "1"})
        runtime(dispatcher).fanout(receipt.id)
    ids = [r.id for r in _rows(dispatcher)]
    records = [
        Record(i, DeliveryStatus.SENT, detail=f"250 Q{i}", provider_id=f"<m{i}@x>") for i in ids
    ]
    assert write_records(dispatcher.store, records, utcnow()) == records
    assert [(r.status, r.provider_id, r.detail, r.claim_token) for r in _rows(dispatcher)] == [
        (DeliveryStatus.SENT, f"<m{i}@x>", f"250 Q{i}", None) for i in ids
    ]
