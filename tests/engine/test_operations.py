"""Operators' actions on deliveries (``Dispatcher.deliveries``), on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json

import redis
from sqlalchemy import insert, select, update

from dispatcher import DeliveryStatus, Dispatcher, Reason
from dispatcher.db.models import Campaign, Delivery, Event
from tests.conftest import runtime


def _failed_delivery(d: Dispatcher, subscriber: str, *, campaign: bool = False) -> int:
    d.subscribers.upsert(subscriber)
    receipt = d.notify("payout_sent", to=subscriber, data={"payout_id": 1, "amount": "1.00"})
    with d.store.session(write=True) as s:
        if campaign:
            campaign_id = s.execute(
                insert(Campaign).values(name="spring", type="payout_sent").returning(Campaign.id)
            ).scalar_one()
            s.execute(update(Event).where(Event.id == receipt.id).values(campaign_id=campaign_id))
    runtime(d).fanout(receipt.id)
    with d.store.session(write=True) as s:
        delivery_id = s.scalars(
            select(Delivery.id).join(Delivery.notification).where(Delivery.status != "failed")
        ).all()[-1]
        s.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(status=DeliveryStatus.FAILED, reason="rejected", attempts=3)
        )
    return delivery_id


def _queued(d: Dispatcher, queue: str) -> list[list[int]]:
    """The delivery ids of the ``dispatcher.deliver`` messages waiting on ``queue``."""
    with redis.Redis.from_url(d.settings.broker_url) as r:
        messages = [json.loads(m) for m in r.lrange(queue, 0, -1)]
    return [
        json.loads(base64.b64decode(m["body"]))[0][0]
        for m in messages
        if m["headers"]["task"] == "dispatcher.deliver"
    ]


def test_retry_writes_a_trail_step_that_explain_shows(dispatcher: Dispatcher) -> None:
    d = dispatcher
    delivery_id = _failed_delivery(d, "u1")
    with redis.Redis.from_url(d.settings.broker_url) as r:
        r.delete("dispatcher.medium", "dispatcher.bulk")
    result = d.deliveries.retry([delivery_id, 10**9])
    assert (result.requeued, result.skipped) == ([delivery_id], [10**9])
    [row] = [r for r in d.deliveries.list() if r.id == delivery_id]
    assert (row.status, row.attempts, row.reason) == (DeliveryStatus.PENDING, 0, None)
    steps = [
        step
        for recipient in d.explain(1).recipients
        for trail in recipient.deliveries
        for step in trail.steps
    ]
    assert any(step.reason == Reason.OPERATOR_RETRY for step in steps)
    assert [delivery_id] in _queued(d, "dispatcher.medium")
    assert d.deliveries.retry([delivery_id]).requeued == []  # no longer failed
    assert runtime(d).deliver([delivery_id]).counts == {"sent": 1}


def test_a_campaigns_retry_goes_to_the_bulk_queue(dispatcher: Dispatcher) -> None:
    d = dispatcher
    delivery_id = _failed_delivery(d, "u2", campaign=True)
    with redis.Redis.from_url(d.settings.broker_url) as r:
        r.delete("dispatcher.medium", "dispatcher.bulk")
    assert d.deliveries.retry([delivery_id]).requeued == [delivery_id]
    assert _queued(d, "dispatcher.bulk") == [[delivery_id]]
    assert _queued(d, "dispatcher.medium") == []


def test_stats_and_unsettled_count_what_is_stored(dispatcher: Dispatcher) -> None:
    d = dispatcher
    assert d.deliveries.unsettled() == 0 and d.deliveries.stats().by_channel == {}
    _failed_delivery(d, "u3")
    stats = d.deliveries.stats()
    assert stats.by_channel == {"in_app": {DeliveryStatus.FAILED: 1}}
    assert stats.by_reason == {"rejected": 1}
    assert d.deliveries.unsettled() == 0
    d.notify("payout_sent", to="u3", data={"payout_id": 2, "amount": "1.00"})
    assert d.deliveries.unsettled() == 1  # an event not yet fanned out
