"""``Dispatcher.ring``: the doorbell for an event whose transaction someone else
committed (Django's ``on_commit``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from dispatcher import Dispatcher

DATA = {"payout_id": 7, "amount": "3.50"}


def _clear_latches(d: Dispatcher) -> None:
    with redis.Redis.from_url(d.settings.redis_url) as r:
        for key in r.scan_iter(f"{d.settings.redis_prefix}:fanout-latch:*"):
            r.delete(key)


def test_ring_sends_a_fanout_for_a_new_due_event(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("ana")
    receipt = dispatcher.notify("payout_sent", to="ana", data=DATA, idempotency_key="k1")
    _clear_latches(dispatcher)
    assert dispatcher.ring(receipt) is True


def test_ring_leaves_replays_and_scheduled_events_to_the_sweep(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("ana")
    dispatcher.notify("payout_sent", to="ana", data=DATA, idempotency_key="k1")
    replay = dispatcher.notify("payout_sent", to="ana", data=DATA, idempotency_key="k1")
    later = dispatcher.notify(
        "payout_sent", to="ana", data=DATA, send_at=datetime.now(UTC) + timedelta(hours=1)
    )
    _clear_latches(dispatcher)
    assert (dispatcher.ring(replay), dispatcher.ring(later)) == (False, False)
