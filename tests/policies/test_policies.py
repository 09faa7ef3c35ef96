"""Send-time policies run in this process with an injected clock, on both backends."""

from __future__ import annotations

import json
import time as walltime
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import select

from dispatcher import DeliveryStatus, Dispatcher, NotFoundError, Reason, ValidationError
from dispatcher.db.models import DeliveryStep
from dispatcher.names import inbox_channel
from tests.conftest import runtime
from tests.policies.support import all_deliveries, at, deliveries, rec, release, send

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


# -- preferences ----------------------------------------------------------------


def test_opted_out_delivery_is_skipped_naming_the_rule(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    d.preferences.set("u1", type="policy_ping", channel="recorder", enabled=False)
    with at(T0):
        event = send(d, "policy_ping", "u1", {"n": 1})
    rows = deliveries(d, event)
    assert rows[("u1", "in_app")].status is DeliveryStatus.SENT
    skipped = rows[("u1", "recorder")]
    assert skipped.status is DeliveryStatus.SKIPPED
    assert skipped.reason == Reason.OPTED_OUT
    assert skipped.detail == "rule: type=policy_ping channel=recorder"
    assert rec(d) == []
    with d.store.session() as s:
        step = s.scalar(select(DeliveryStep).where(DeliveryStep.delivery_id == skipped.id))
        assert step is not None and step.reason == "opted_out" and step.at == T0


def test_most_specific_rule_wins_at_send_time(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    d.subscribers.upsert("u2")
    for who in ("u1", "u2"):
        d.preferences.set(who, enabled=False)  # all channels off
    d.preferences.set("u1", category="pings", channel="recorder", enabled=True)
    event = send(d, "policy_ping", ["u1", "u2"], {"n": 1})
    rows = deliveries(d, event)
    assert rows[("u1", "recorder")].status is DeliveryStatus.SENT
    assert rows[("u1", "in_app")].detail == "rule: all channel=*"
    assert rows[("u2", "recorder")].detail == "rule: all channel=*"
    assert rows[("u2", "in_app")].status is DeliveryStatus.SKIPPED


def test_preference_changed_after_fanout_is_honoured(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    receipt = d.notify("policy_ping", to="u1", data={"n": 1})
    runtime(d).fanout(receipt.id)
    d.preferences.set("u1", channel="recorder", enabled=False)  # after the event
    runtime(d).deliver([r.id for r in deliveries(d, receipt.id).values()])
    assert deliveries(d, receipt.id)[("u1", "recorder")].reason == Reason.OPTED_OUT


def test_critical_forced_channels_cannot_be_turned_off(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    for channel in ("in_app", "recorder"):
        with pytest.raises(ValidationError, match="critical and cannot be turned off"):
            d.preferences.set("u1", type="policy_critical", channel=channel, enabled=False)
    assert d.preferences.rules("u1") == []  # nothing written
    # Broader rules are accepted, and ignored on forced channels at send time.
    d.preferences.set("u1", enabled=False)
    d.preferences.set("u1", type="policy_critical", enabled=False)
    critical = send(d, "policy_critical", "u1", {"n": 1})
    ordinary = send(d, "policy_ping", "u1", {"n": 2})
    assert {r.status for r in deliveries(d, critical).values()} == {DeliveryStatus.SENT}
    assert {r.status for r in deliveries(d, ordinary).values()} == {DeliveryStatus.SKIPPED}
    matrix = d.preferences.matrix("u1")
    assert matrix["policy_critical"]["recorder"].enabled
    assert matrix["policy_critical"]["recorder"].forced
    assert matrix["system_alert"]["in_app"].forced and matrix["system_alert"]["email"].forced
    assert not matrix["system_alert"]["web_push"].enabled  # not forced: the rule applies


def test_unsubscribe_beats_narrower_on_rules_but_not_critical(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    d.preferences.set("u1", type="policy_ping", channel="recorder", enabled=True)
    d.preferences.set("u1", category="pings", enabled=True)
    d.preferences.set("u1", type="policy_limited", enabled=True)
    d.preferences.unsubscribe("u1", channel="recorder")
    matrix = d.preferences.matrix("u1")
    for name in ("policy_ping", "policy_limited", "policy_burst"):
        assert not matrix[name]["recorder"].enabled, name
        assert matrix[name]["in_app"].enabled, name  # other channels untouched
    assert matrix["policy_critical"]["recorder"].enabled
    event = send(d, "policy_ping", "u1", {"n": 1})
    assert deliveries(d, event)[("u1", "recorder")].reason == Reason.OPTED_OUT
    with pytest.raises(ValidationError, match="one channel"):
        d.preferences.unsubscribe("u1", channel="*")


def test_matrix_shows_defaults_unavailable_and_rules(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    d.preferences.set("u1", category="sales", channel="email", enabled=False)
    m = d.preferences.matrix("u1")
    assert m["ticket_created"]["email"].enabled is False
    assert m["ticket_created"]["email"].because == "category=sales channel=email"
    assert m["ticket_created"]["web_push"].enabled and m["ticket_created"]["web_push"].because == (
        "default"
    )
    assert not m["ticket_updated"]["email"].enabled
    assert m["ticket_updated"]["email"].because == "not a channel of this type"
    assert m["report_generated"]["email"].enabled  # other category: default
    assert set(m["ticket_created"]) >= {"in_app", "web_push", "email", "recorder"}
    with pytest.raises(NotFoundError):
        d.preferences.matrix("nobody")


# -- quiet hours ---------------------------------------------------------------


def test_quiet_hours_api_validates_and_round_trips(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1", timezone="Europe/Madrid")
    with pytest.raises(ValidationError, match="HH:MM"):
        d.quiet_hours.set("u1", [("22:00", "07:00"), ("24:00", "07:00")])
    assert d.quiet_hours.list("u1") == []  # nothing written
    saved = d.quiet_hours.set("u1", [("22:00", "07:00", "weekdays"), ("13:00", "15:00")])
    assert [x.describe() for x in d.quiet_hours.list("u1")] == [
        "22:00-07:00 mon,tue,wed,thu,fri",
        "13:00-15:00 every day",
    ]
    assert d.quiet_hours.list("u1") == saved
    assert d.quiet_hours.clear("u1") == 2 and d.quiet_hours.list("u1") == []
    with pytest.raises(NotFoundError):
        d.quiet_hours.set("nobody", [("22:00", "07:00")])


def test_quiet_hours_defer_push_like_channels_and_silence_in_app(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1", timezone="Europe/Madrid")
    d.quiet_hours.set("u1", [("22:00", "07:00")])
    pubsub = redis.Redis.from_url(d.settings.redis_url).pubsub()
    pubsub.subscribe(inbox_channel(d.settings.redis_prefix, "u1"))
    pubsub.get_message(timeout=1)  # subscription confirmation
    night = datetime(2026, 11, 27, 22, 30, tzinfo=UTC)  # 23:30 in Madrid
    with at(night):
        event = send(d, "policy_ping", "u1", {"n": 1})
    rows = deliveries(d, event)
    held = rows[("u1", "recorder")]
    assert held.status is DeliveryStatus.SCHEDULED
    assert held.reason == Reason.QUIET_HOURS
    assert held.scheduled_for == datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    assert held.detail == "until 07:00 Europe/Madrid (06:00 UTC)"
    assert held.attempts == 0  # a deferral is not an attempt
    assert rows[("u1", "in_app")].status is DeliveryStatus.SENT
    assert d.inbox("u1")[0].title == "Ping 1"
    assert _published(pubsub) == []  # stored without a real-time ping
    with at(datetime(2026, 11, 28, 12, 0, tzinfo=UTC)):
        send(d, "policy_ping", "u1", {"n": 2})
    assert [m["notification"]["title"] for m in _published(pubsub)] == ["Ping 2"]
    pubsub.close()


def _published(pubsub: redis.client.PubSub) -> list[dict[str, dict[str, str]]]:
    out = []
    deadline = walltime.monotonic() + 1.0
    while walltime.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            out.append(json.loads(message["data"]))
    return out


def test_urgent_bypasses_quiet_hours(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1", timezone="Asia/Kathmandu")
    d.quiet_hours.set("u1", [("00:00", "23:59")])
    with at(T0):
        event = send(d, "policy_ping", "u1", {"n": 1}, priority="urgent")
    assert deliveries(d, event)[("u1", "recorder")].status is DeliveryStatus.SENT
    assert len(rec(d)) == 1


# Nights on both sides of each zone's DST change: (zone, night start UTC, window end UTC).
DST_NIGHTS = [
    ("Europe/Madrid", "2026-03-27T22:30", "2026-03-28T06:00"),  # before: CET
    ("Europe/Madrid", "2026-03-28T22:30", "2026-03-29T05:00"),  # after: CEST
    ("Europe/Madrid", "2026-10-23T21:30", "2026-10-24T05:00"),  # before: CEST
    ("Europe/Madrid", "2026-10-24T21:30", "2026-10-25T06:00"),  # after: CET
    ("America/New_York", "2026-03-07T04:00", "2026-03-07T12:00"),  # EST
    ("America/New_York", "2026-03-08T04:00", "2026-03-08T11:00"),  # EDT
    ("Australia/Lord_Howe", "2026-10-02T12:00", "2026-10-02T20:30"),  # +10:30
    ("Australia/Lord_Howe", "2026-10-03T12:00", "2026-10-03T20:00"),  # +11
    ("Asia/Kathmandu", "2026-03-28T17:00", "2026-03-29T01:15"),  # +05:45 all year
]


@pytest.mark.parametrize(("zone", "night", "end"), DST_NIGHTS)
def test_deferred_delivery_is_released_by_the_sweep_at_the_window_end(
    inproc: Dispatcher, zone: str, night: str, end: str
) -> None:
    d = inproc
    d.subscribers.upsert("u1", timezone=zone)
    d.quiet_hours.set("u1", [("22:00", "07:00")])
    start = datetime.fromisoformat(night).replace(tzinfo=UTC)
    until = datetime.fromisoformat(end).replace(tzinfo=UTC)
    with at(start):
        event = send(d, "policy_ping", "u1", {"n": 1})
    held = deliveries(d, event)[("u1", "recorder")]
    assert held.status is DeliveryStatus.SCHEDULED and held.scheduled_for == until
    with at(until - timedelta(seconds=1)):
        assert release(d) == []
    assert rec(d) == []
    with at(until):
        assert release(d) == [held.id]
    sent = deliveries(d, event)[("u1", "recorder")]
    assert sent.status is DeliveryStatus.SENT and sent.sent_at == until
    assert [m["at"] for m in rec(d)] == [until.isoformat()]


# -- collapse ------------------------------------------------------------------


def _three_held(d: Dispatcher, type: str = "policy_ping") -> tuple[list[int], datetime]:
    d.subscribers.upsert("u1", timezone="Europe/Madrid")
    d.quiet_hours.set("u1", [("22:00", "07:00")])
    ids = []
    for n, minute in enumerate((5, 10, 15)):
        with at(datetime(2026, 11, 27, 23, minute, tzinfo=UTC)):
            event = send(d, type, "u1", {"n": n})
        ids.append(deliveries(d, event)[("u1", "recorder")].id)
    return ids, datetime(2026, 11, 28, 6, 0, tzinfo=UTC)


def test_released_deferred_deliveries_collapse_into_the_newest(inproc: Dispatcher) -> None:
    d = inproc
    ids, end = _three_held(d)
    with at(end):
        release(d)
    by_id = {r.id: r for r in all_deliveries(d)}
    assert by_id[ids[2]].status is DeliveryStatus.SENT
    for i in ids[:2]:
        assert by_id[i].status is DeliveryStatus.SKIPPED
        assert by_id[i].reason == Reason.COLLAPSED
        assert by_id[i].detail == f"folded into delivery {ids[2]}"
    assert [m["delivery_id"] for m in rec(d)] == [ids[2]]
    assert len(d.inbox("u1")) == 3  # in-app was never deferred, so never collapsed


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 0, 2)])
def test_collapse_agrees_across_split_and_duplicated_batches(
    inproc: Dispatcher, order: tuple[int, ...]
) -> None:
    d = inproc
    ids, end = _three_held(d)
    with at(end):
        runtime(d).sweep()
        for k in order:  # one batch per delivery, each message delivered twice
            runtime(d).deliver([ids[k]])
            runtime(d).deliver([ids[k]])
    assert [m["delivery_id"] for m in rec(d)] == [ids[2]]
    statuses = {r.id: r.status for r in all_deliveries(d) if r.id in ids}
    assert statuses == {
        ids[0]: DeliveryStatus.SKIPPED,
        ids[1]: DeliveryStatus.SKIPPED,
        ids[2]: DeliveryStatus.SENT,
    }


def test_types_without_collapse_send_every_deferred_delivery(inproc: Dispatcher) -> None:
    d = inproc
    ids, end = _three_held(d, "policy_limited")
    with at(end):
        release(d)
    assert sorted(m["delivery_id"] for m in rec(d)) == ids


# -- rate limits ---------------------------------------------------------------


def test_excess_deliveries_wait_for_a_free_slot(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    d.subscribers.upsert("u2")
    ids = []
    for n in range(5):
        with at(T0 + timedelta(seconds=n)):
            event = send(d, "policy_limited", ["u1", "u2"], {"n": n})
        ids.append(deliveries(d, event)[("u1", "recorder")])
    assert [r.status for r in ids] == [DeliveryStatus.SENT] * 3 + [DeliveryStatus.SCHEDULED] * 2
    assert ids[3].reason == ids[4].reason == Reason.RATE_LIMITED
    # Each waits for the first slot to free up (the oldest send expires at T0+60s)...
    assert ids[3].scheduled_for == ids[4].scheduled_for == T0 + timedelta(seconds=60)
    assert "over 3 per minute on recorder for policy_limited" in (ids[3].detail or "")
    # u2 has its own counter.
    assert sum(1 for m in rec(d) if m["subscriber"] == "u2") == 3
    with at(T0 + timedelta(seconds=60)):
        release(d)
    # ...where one slot is free: the older goes, the newer waits for the next slot.
    now = {r.id: r for r in all_deliveries(d)}
    assert now[ids[3].id].status is DeliveryStatus.SENT
    assert now[ids[4].id].status is DeliveryStatus.SCHEDULED
    assert now[ids[4].id].scheduled_for == T0 + timedelta(seconds=61)
    with at(T0 + timedelta(seconds=61)):
        release(d)
    assert sum(1 for m in rec(d) if m["subscriber"] == "u1") == 5
    sent_at = sorted(m["at"] for m in rec(d) if m["subscriber"] == "u1")
    # Never more than 3 in any 60-second window.
    instants = [datetime.fromisoformat(str(x)) for x in sent_at]
    for i in range(len(instants) - 3):
        assert instants[i + 3] - instants[i] >= timedelta(seconds=60)


def test_rate_limited_collapsible_type_folds_the_excess(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    with at(T0):
        event_ids = [send(d, "policy_burst", "u1", {"n": n}) for n in range(5)]
    rows = [deliveries(d, e)[("u1", "recorder")] for e in event_ids]
    assert [r.status for r in rows[:2]] == [DeliveryStatus.SENT] * 2
    assert {r.scheduled_for for r in rows[2:]} == {T0 + timedelta(seconds=60)}
    with at(T0 + timedelta(seconds=60)):
        release(d)
    assert [m["delivery_id"] for m in rec(d)] == [rows[0].id, rows[1].id, rows[4].id]
    reasons = [r.reason for r in all_deliveries(d) if r.id in {rows[2].id, rows[3].id}]
    assert reasons == [Reason.COLLAPSED, Reason.COLLAPSED]


def test_urgent_is_never_rate_limited(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1")
    with at(T0):
        for n in range(5):
            send(d, "policy_limited", "u1", {"n": n}, priority="urgent")
    assert len(rec(d)) == 5
