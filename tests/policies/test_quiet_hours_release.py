"""Property: through the real policy chain and sweep, a deferred delivery is released
at the end of the quiet period, never inside a window and never later."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher import DeliveryStatus, Dispatcher, Reason, ValidationError
from dispatcher.policies.quiet_hours import MAX_QUIET, QuietWindow, covers_whole_week
from tests.policies.support import at, deliveries, release, send

ZONES = ["America/New_York", "Europe/Madrid", "Australia/Lord_Howe", "Asia/Kathmandu"]
_ids = itertools.count()

minutes = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
windows = st.builds(QuietWindow, minutes, minutes, st.just("0123456")).filter(
    lambda w: w.start != w.end
)
# Around the 2026 transitions of all four zones, minute resolution.
nights = st.sampled_from(
    [
        datetime(2026, 3, 7, tzinfo=UTC),
        datetime(2026, 3, 28, tzinfo=UTC),
        datetime(2026, 4, 4, tzinfo=UTC),
        datetime(2026, 10, 3, tzinfo=UTC),
        datetime(2026, 10, 24, tzinfo=UTC),
        datetime(2026, 10, 31, tzinfo=UTC),
    ]
).flatmap(lambda d: st.integers(0, 2 * 24 * 60).map(lambda m: d + timedelta(minutes=m)))


def _inside(ws: list[QuietWindow], zone: ZoneInfo, t: datetime) -> bool:
    local = t.astimezone(zone).date()
    return any(
        s <= t < e
        for w in ws
        for s, e in w.intervals(zone, local - timedelta(days=2), local + timedelta(days=1))
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.sampled_from(ZONES), st.lists(windows, min_size=1, max_size=2), nights)
def test_released_exactly_when_the_quiet_period_ends(
    inproc: Dispatcher, zone_name: str, ws: list[QuietWindow], now: datetime
) -> None:
    d = inproc
    who = f"p{next(_ids)}"
    d.subscribers.upsert(who, timezone=zone_name)
    if covers_whole_week(ws):
        with pytest.raises(ValidationError, match="whole week"):
            d.quiet_hours.set(who, ws)
        return
    d.quiet_hours.set(who, ws)
    zone = ZoneInfo(zone_name)
    with at(now):
        event = send(d, "policy_ping", who, {"n": 1})
    row = deliveries(d, event)[(who, "recorder")]
    if not _inside(ws, zone, now):
        assert row.status is DeliveryStatus.SENT
        return
    assert row.status is DeliveryStatus.SCHEDULED and row.reason == Reason.QUIET_HOURS
    end = row.scheduled_for
    assert now < end < now + MAX_QUIET
    assert not _inside(ws, zone, end)  # never released inside a window
    assert _inside(ws, zone, end - timedelta(seconds=1))  # nor a second after it ends
    with at(end - timedelta(seconds=1)):
        assert row.id not in release(d)
    with at(end):
        assert row.id in release(d)
    assert deliveries(d, event)[(who, "recorder")].sent_at == end
