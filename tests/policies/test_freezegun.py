"""The same release-at-the-window-end flow under freezegun instead of the injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

from freezegun import freeze_time

from dispatcher import DeliveryStatus, Dispatcher
from tests.policies.support import deliveries, rec, release, send


def test_spring_forward_night_in_new_york_under_freezegun(inproc: Dispatcher) -> None:
    d = inproc
    d.subscribers.upsert("u1", timezone="America/New_York")
    d.quiet_hours.set("u1", [("23:00", "06:30")])
    # 2026-03-08: clocks jump 02:00 EST -> 03:00 EDT, so 06:30 EDT is 10:30 UTC.
    with freeze_time("2026-03-08T05:00:00Z"):  # 00:00 EST
        event = send(d, "policy_ping", "u1", {"n": 1})
    held = deliveries(d, event)[("u1", "recorder")]
    assert held.status is DeliveryStatus.SCHEDULED
    assert held.scheduled_for == datetime(2026, 3, 8, 10, 30, tzinfo=UTC)
    assert held.detail == "until 06:30 America/New_York (10:30 UTC)"
    with freeze_time("2026-03-08T10:29:59Z"):  # 06:29:59 EDT (11:29:59 if DST were ignored)
        assert release(d) == []
    with freeze_time("2026-03-08T10:30:00Z"):
        assert release(d) == [held.id]
    assert [m["at"] for m in rec(d)] == ["2026-03-08T10:30:00+00:00"]
