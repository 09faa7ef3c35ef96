"""Policies through a real Celery worker on real Redis, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dispatcher import DeliveryStatus, Dispatcher, Reason
from tests.conftest import Worker, runtime, wait_for
from tests.policies.support import all_deliveries, deliveries, rec


def _sleep_until(instant: datetime) -> None:
    delay = (instant - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)


def _recorder(d: Dispatcher, event_id: int, subscriber: str):  # type: ignore[no-untyped-def]
    return deliveries(d, event_id).get((subscriber, "recorder"))


def test_preference_changed_between_event_and_delivery_is_honoured(
    dispatcher: Dispatcher, policy_worker: Worker
) -> None:
    d = dispatcher
    d.subscribers.upsert("w1")
    first = d.notify("policy_trickle", to="w1", data={"n": 1}).id
    wait_for(lambda: len(rec(d)) == 1)
    second = d.notify("policy_trickle", to="w1", data={"n": 2}).id
    held = wait_for(
        lambda: (
            (r := _recorder(d, second, "w1")) is not None
            and r.status is DeliveryStatus.SCHEDULED
            and r
        )
    )
    assert held.reason == Reason.RATE_LIMITED  # 1 per 2 s: the worker deferred it
    d.preferences.set("w1", type="policy_trickle", channel="recorder", enabled=False)
    _sleep_until(held.scheduled_for + timedelta(milliseconds=50))
    runtime(d).sweep()  # what beat does; the worker claims and decides again
    final = wait_for(
        lambda: (r := _recorder(d, second, "w1")) is not None and r.status.is_final and r
    )
    assert final.status is DeliveryStatus.SKIPPED
    assert final.detail == "rule: type=policy_trickle channel=recorder"
    assert [m["delivery_id"] for m in rec(d)] == [_recorder(d, first, "w1").id]


def test_quiet_hours_deferral_is_released_by_the_sweep_at_the_window_end(
    dispatcher: Dispatcher, policy_worker: Worker
) -> None:
    d = dispatcher
    zone = ZoneInfo("Asia/Kathmandu")
    now = datetime.now(UTC)
    if now.second >= 50:  # leave time to defer before the window closes
        _sleep_until(now.replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=1))
        now = datetime.now(UTC)
    start = now.astimezone(zone).replace(second=0, microsecond=0)
    end = start + timedelta(minutes=1)
    d.subscribers.upsert("w2", timezone="Asia/Kathmandu")
    d.quiet_hours.set("w2", [(f"{start:%H:%M}", f"{end:%H:%M}")])
    event = d.notify("policy_ping", to="w2", data={"n": 1}).id
    held = wait_for(
        lambda: (
            (r := _recorder(d, event, "w2")) is not None
            and r.status is DeliveryStatus.SCHEDULED
            and r
        )
    )
    assert held.reason == Reason.QUIET_HOURS
    assert held.scheduled_for == end.astimezone(UTC)
    assert held.detail == f"until {end:%H:%M} Asia/Kathmandu ({end.astimezone(UTC):%H:%M} UTC)"
    wait_for(lambda: deliveries(d, event)[("w2", "in_app")].status is DeliveryStatus.SENT)
    assert runtime(d).sweep().deliveries == 0  # not due yet: the sweep leaves it alone
    _sleep_until(held.scheduled_for + timedelta(milliseconds=50))
    assert runtime(d).sweep().deliveries == 1
    wait_for(lambda: _recorder(d, event, "w2").status is DeliveryStatus.SENT)
    [message] = rec(d)
    assert datetime.fromisoformat(str(message["at"])) >= held.scheduled_for
    trail = d.explain(event).recipients[0].deliveries[1]
    assert [s.summary.split(" ")[0] for s in trail.steps] == ["created", "scheduled:", "sent"]


def test_rate_limit_through_the_worker(dispatcher: Dispatcher, policy_worker: Worker) -> None:
    d = dispatcher
    d.subscribers.upsert("w3")
    for n in range(5):
        d.notify("policy_limited", to="w3", data={"n": n})
    wait_for(
        lambda: (
            len([r for r in all_deliveries(d) if r.channel == "recorder"]) == 5
            and all(
                r.status in (DeliveryStatus.SENT, DeliveryStatus.SCHEDULED)
                for r in all_deliveries(d)
                if r.channel == "recorder"
            )
        )
    )
    rows = [r for r in all_deliveries(d) if r.channel == "recorder"]
    assert sorted(r.status for r in rows).count(DeliveryStatus.SENT) == 3
    assert {r.reason for r in rows if r.status is DeliveryStatus.SCHEDULED} == {Reason.RATE_LIMITED}
    assert len(rec(d)) == 3
