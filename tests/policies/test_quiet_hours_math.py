"""Quiet-hours time math: windows in local time, across DST gaps and folds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dispatcher import ValidationError
from dispatcher.policies.quiet_hours import (
    MAX_QUIET,
    QuietWindow,
    covers_whole_week,
    describe_until,
    local_instant,
    parse_days,
    parse_window,
    quiet_until,
)

ZONES = ["America/New_York", "Europe/Madrid", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def w(start: str, end: str, days: str = "0123456") -> QuietWindow:
    return parse_window((start, end, days))


# (zone, window, now UTC, expected end UTC or None, why)
CASES = [
    ("Europe/Madrid", w("22:00", "07:00"), "2026-11-27T22:00", "2026-11-28T06:00", "winter +01"),
    ("Europe/Madrid", w("22:00", "07:00"), "2026-11-27T11:00", None, "midday"),
    ("Europe/Madrid", w("22:00", "07:00"), "2026-11-28T06:00", None, "end is exclusive"),
    ("Europe/Madrid", w("22:00", "07:00"), "2026-11-27T20:59", None, "a minute early"),
    ("Europe/Madrid", w("22:00", "07:00"), "2026-07-01T20:00", "2026-07-02T05:00", "summer +02"),
    # Friday-only window crosses into Saturday; Saturday night is free.
    ("Europe/Madrid", w("22:00", "07:00", "4"), "2026-11-28T05:00", "2026-11-28T06:00", "fri"),
    ("Europe/Madrid", w("22:00", "07:00", "4"), "2026-11-28T22:30", None, "sat night"),
    # Spring forward 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist.
    ("Europe/Madrid", w("22:00", "02:30"), "2026-03-29T00:30", "2026-03-29T01:00", "end in gap"),
    ("Europe/Madrid", w("02:30", "07:00"), "2026-03-29T00:59", None, "start in gap, before"),
    ("Europe/Madrid", w("02:30", "07:00"), "2026-03-29T01:00", "2026-03-29T05:00", "start in gap"),
    ("Europe/Madrid", w("22:00", "07:00"), "2026-03-28T23:00", "2026-03-29T05:00", "night of gap"),
    # Fall back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice; first counts.
    ("Europe/Madrid", w("22:00", "02:30"), "2026-10-25T00:00", "2026-10-25T00:30", "end in fold"),
    ("Europe/Madrid", w("22:00", "02:30"), "2026-10-25T01:30", None, "second 02:30 is free"),
    ("Europe/Madrid", w("02:30", "06:00"), "2026-10-25T00:30", "2026-10-25T05:00", "start fold"),
    ("Europe/Madrid", w("22:00", "07:00"), "2026-10-24T21:00", "2026-10-25T06:00", "night fold"),
    # New York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
    ("America/New_York", w("22:00", "07:00"), "2026-03-08T04:00", "2026-03-08T11:00", "spring"),
    ("America/New_York", w("22:00", "07:00"), "2026-03-07T04:00", "2026-03-07T12:00", "day before"),
    ("America/New_York", w("22:00", "07:00"), "2026-11-01T04:00", "2026-11-01T12:00", "fall"),
    ("America/New_York", w("22:00", "07:00"), "2026-10-31T04:00", "2026-10-31T11:00", "day before"),
    ("America/New_York", w("02:15", "05:00"), "2026-03-08T07:00", "2026-03-08T09:00", "gap start"),
    ("America/New_York", w("02:15", "05:00"), "2026-03-08T06:59", None, "just before gap"),
    # Lord Howe: +10:30, DST +11 (30-minute shift). 2026-10-04 02:00 -> 02:30 (gap);
    # 2026-04-05 02:00 LHDT -> 01:30 LHST (01:30-02:00 happens twice).
    ("Australia/Lord_Howe", w("02:10", "06:00"), "2026-10-03T15:30", "2026-10-03T19:00", "gap"),
    ("Australia/Lord_Howe", w("02:10", "06:00"), "2026-10-03T15:29", None, "before the gap"),
    ("Australia/Lord_Howe", w("22:00", "01:45"), "2026-04-04T14:00", "2026-04-04T14:45", "fold"),
    ("Australia/Lord_Howe", w("22:00", "01:45"), "2026-04-04T15:10", None, "second 01:45 free"),
    ("Australia/Lord_Howe", w("22:00", "07:00"), "2026-04-04T12:00", "2026-04-04T20:30", "ends"),
    # Kathmandu: +05:45, no DST.
    ("Asia/Kathmandu", w("22:00", "07:00"), "2026-11-27T17:00", "2026-11-28T01:15", "+05:45"),
    ("Asia/Kathmandu", w("22:00", "07:00"), "2026-11-27T16:14", None, "21:59 local"),
    ("Asia/Kathmandu", w("22:00", "07:00"), "2026-11-27T16:15", "2026-11-28T01:15", "22:00"),
]


@pytest.mark.parametrize(("zone", "window", "now", "expected", "why"), CASES)
def test_quiet_until_table(
    zone: str, window: QuietWindow, now: str, expected: str | None, why: str
) -> None:
    got = quiet_until([window], ZoneInfo(zone), utc(now))
    assert got == (utc(expected) if expected else None), why


def test_touching_windows_merge_into_one_quiet_period() -> None:
    zone = ZoneInfo("Europe/Madrid")
    windows = [w("22:00", "02:00"), w("02:00", "07:00"), w("06:30", "08:00")]
    assert quiet_until(windows, zone, utc("2026-11-27T22:00")) == utc("2026-11-28T07:00")


def test_always_quiet_is_refused_and_never_holds_forever() -> None:
    windows = [w("00:00", "12:00"), w("12:00", "00:00")]
    assert covers_whole_week(windows)
    assert not covers_whole_week([w("00:00", "12:00"), w("12:01", "00:00")])
    assert not covers_whole_week([w("00:00", "12:00"), w("12:00", "00:00", "012345")])
    # Stored anyway (older rows): treated as not quiet rather than deferred forever.
    assert quiet_until(windows, ZoneInfo("UTC"), utc("2026-11-27T10:00")) is None


def test_window_made_empty_by_a_gap_is_skipped() -> None:
    zone = ZoneInfo("Europe/Madrid")
    # 02:00-02:30 on 2026-03-29 lies wholly in the gap: both ends are 03:00 CEST.
    assert quiet_until([w("02:00", "02:30")], zone, utc("2026-03-29T01:00")) is None
    assert quiet_until([w("02:00", "02:30")], zone, utc("2026-03-30T00:10")) is not None


def test_describe_until_names_local_and_utc() -> None:
    zone = ZoneInfo("Europe/Madrid")
    now = utc("2026-11-27T22:00")
    assert describe_until(utc("2026-11-28T06:00"), zone, now) == (
        "until 07:00 Europe/Madrid (06:00 UTC)"
    )
    assert describe_until(utc("2026-11-30T06:00"), zone, now) == (
        "until 2026-11-30 07:00 Europe/Madrid (2026-11-30 06:00 UTC)"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (("25:00", "07:00"), "use HH:MM"),
        (("22:00", "7:00"), "use HH:MM"),
        (("22:00", "22:00"), "is empty"),
        (("22:00", "07:00", [7]), "quiet hours day 7"),
        (("22:00", "07:00", "x"), "quiet hours day 'x'"),
        (("22:00", "07:00", []), "at least one day"),
        (("22:00",), "use (start, end)"),
        ("22:00-07:00", "use (start, end)"),
        ((time(22, 0, 30), "07:00"), "whole minutes"),
    ],
)
def test_bad_windows_are_refused(spec: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_window(spec)  # type: ignore[arg-type]


def test_days_forms() -> None:
    assert parse_days(None) == "0123456"
    assert parse_days("weekdays") == "01234"
    assert parse_days("weekends") == "56"
    assert parse_days(["fri", "Monday", 3]) == "034"
    assert parse_days("41") == "14"


# -- properties ---------------------------------------------------------------

zones = st.sampled_from(ZONES)
minutes = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
day_sets = st.sets(st.integers(0, 6), min_size=1).map(lambda s: "".join(map(str, sorted(s))))
windows = st.builds(QuietWindow, minutes, minutes, day_sets).filter(lambda x: x.start != x.end)
instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC, microsecond=0)
)


def _inside(spans: list[tuple[datetime, datetime]], t: datetime) -> bool:
    return any(s <= t < e for s, e in spans)


@settings(max_examples=400, deadline=None)
@given(zones, st.lists(windows, min_size=1, max_size=3), instants)
def test_never_released_inside_a_window_nor_after_its_end(
    zone_name: str, ws: list[QuietWindow], now: datetime
) -> None:
    zone = ZoneInfo(zone_name)
    local = now.astimezone(zone).date()
    spans = [
        span
        for x in ws
        for span in x.intervals(zone, local - timedelta(days=3), local + timedelta(days=12))
    ]
    until = quiet_until(ws, zone, now)
    if until is None:
        assert not _inside(spans, now) or covers_whole_week(ws)
        return
    assert now < until < now + MAX_QUIET
    assert not _inside(spans, until)  # released outside every window...
    # ...and not a second later than the quiet period: every instant before is quiet.
    step = (until - now) / 64
    for k in range(64):
        assert _inside(spans, now + step * k)
    assert _inside(spans, until - timedelta(seconds=1))


def _offset_changes_near(zone: ZoneInfo, t: datetime) -> bool:
    offsets = {(t + timedelta(hours=h)).astimezone(zone).utcoffset() for h in range(-30, 31, 1)}
    return len(offsets) > 1


def _wall_clock_quiet(ws: list[QuietWindow], zone: ZoneInfo, t: datetime) -> bool:
    local = t.astimezone(zone)
    now, today, yesterday = local.time(), local.weekday(), (local.weekday() - 1) % 7
    for x in ws:
        if x.start < x.end:
            if str(today) in x.days and x.start <= now < x.end:
                return True
        elif (str(today) in x.days and now >= x.start) or (
            str(yesterday) in x.days and now < x.end
        ):
            return True
    return False


@settings(max_examples=400, deadline=None)
@given(zones, st.lists(windows, min_size=1, max_size=3), instants)
def test_agrees_with_the_wall_clock_away_from_transitions(
    zone_name: str, ws: list[QuietWindow], now: datetime
) -> None:
    zone = ZoneInfo(zone_name)
    assume(not _offset_changes_near(zone, now) and not covers_whole_week(ws))
    until = quiet_until(ws, zone, now)
    assert (until is not None) == _wall_clock_quiet(ws, zone, now)
    if until is not None and not _offset_changes_near(zone, until):
        assert not _wall_clock_quiet(ws, zone, until)
        assert _wall_clock_quiet(ws, zone, until - timedelta(minutes=1))


@settings(max_examples=600, deadline=None)
@given(zones, st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)), minutes)
def test_local_instant_is_the_first_instant_at_or_after_the_wall_time(
    zone_name: str, day: date, wall: time
) -> None:
    zone = ZoneInfo(zone_name)
    naive = datetime.combine(day, wall)
    instant = local_instant(day, wall, zone)
    assert instant.astimezone(zone).replace(tzinfo=None) >= naive
    assert (instant - timedelta(seconds=1)).astimezone(zone).replace(tzinfo=None) < naive
