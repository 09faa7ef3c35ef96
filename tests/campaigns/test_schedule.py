"""Cron expressions read in an IANA zone, across DST (pure functions, tables of cases),
and beat's tick at frozen times across a change of offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from dispatcher import Dispatcher, InvalidCampaignError
from dispatcher.campaigns.schedule import next_after, parse_cron
from tests.campaigns.support import PAYOUT, add_subscribers
from tests.conftest import runtime

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # 09:00 local stays 09:00 local: 08:00 UTC in winter, 07:00 UTC in summer.
        ("0 9 * * *", BERLIN, utc(2026, 3, 28, 12), utc(2026, 3, 29, 7)),
        ("0 9 * * *", BERLIN, utc(2026, 3, 27, 12), utc(2026, 3, 28, 8)),
        ("0 9 * * *", BERLIN, utc(2026, 10, 24, 12), utc(2026, 10, 25, 8)),
        # 02:30 does not exist on 2026-03-29 in Berlin: it runs once, at 03:00 CEST.
        ("30 2 * * *", BERLIN, utc(2026, 3, 28, 12), utc(2026, 3, 29, 1)),
        ("30 2 * * *", BERLIN, utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)),
        # 02:30 happens twice on 2026-10-25: it runs once, at the first (CEST).
        ("30 2 * * *", BERLIN, utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30)),
        ("30 2 * * *", BERLIN, utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)),
        # Every 15 minutes through the New York spring gap (02:00-03:00 on 2026-03-08).
        ("*/15 * * * *", NEW_YORK, utc(2026, 3, 8, 6, 50), utc(2026, 3, 8, 7, 0)),
        # Mondays at 08:00 (weekday 1), and Sunday as 0 or 7.
        ("0 8 * * 1", BERLIN, utc(2026, 11, 30, 12), utc(2026, 12, 7, 7)),
        ("0 8 * * 7", BERLIN, utc(2026, 11, 30, 12), utc(2026, 12, 6, 7)),
        # Day of month and weekday both restricted: either matches (Vixie cron).
        ("0 0 1 * 5", ZoneInfo("UTC"), utc(2026, 11, 30, 12), utc(2026, 12, 1)),
        ("0 12 31 2 *", ZoneInfo("UTC"), utc(2026, 1, 1), None),
    ],
)
def test_next_firing(
    expression: str, zone: ZoneInfo, after: datetime, expected: datetime | None
) -> None:
    assert next_after(parse_cron(expression), zone, after) == expected


def firings(expression: str, zone: ZoneInfo, after: datetime, until: datetime) -> list[str]:
    cron, out = parse_cron(expression), []
    at: datetime | None = after
    while at is not None and at < until:
        at = next_after(cron, zone, at)
        if at is not None and at < until:
            out.append(at.astimezone(zone).strftime("%H:%M%z"))
    return out


def test_a_wall_time_of_the_fold_fires_once_at_its_first_occurrence() -> None:
    # 02:00 and 02:30 happen twice on 2026-10-25 in Berlin (CEST, then CET).
    assert firings("*/30 * * * *", BERLIN, utc(2026, 10, 24, 23, 45), utc(2026, 10, 25, 2, 1)) == [
        "02:00+0200",
        "02:30+0200",
        "03:00+0100",
    ]


def test_the_wall_times_of_the_gap_fire_once_when_it_ends() -> None:
    # 02:00 and 02:30 do not exist on 2026-03-29 in Berlin.
    assert firings("*/30 * * * *", BERLIN, utc(2026, 3, 29, 0, 15), utc(2026, 3, 29, 1, 31)) == [
        "01:30+0100",
        "03:00+0200",
        "03:30+0200",
    ]


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("* * * *", "expected 5 fields"),
        ("60 * * * *", "minute field '60'"),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day field"),
        ("* * * 13 *", "month field"),
        ("* * * * 8", "weekday field"),
        ("*/0 * * * *", "step '0'"),
        ("a * * * *", "'a' is not a number"),
        ("5-1 * * * *", "values must lie"),
    ],
)
def test_bad_expressions_are_refused_precisely(expression: str, words: str) -> None:
    with pytest.raises(InvalidCampaignError, match="cron") as caught:
        parse_cron(expression)
    assert words in str(caught.value)


def test_beat_starts_a_recurring_campaign_at_local_times_across_dst(dispatcher: Dispatcher) -> None:
    d = dispatcher
    add_subscribers(d, 3)
    with freeze_time(utc(2026, 3, 27, 12)):
        campaign = d.campaigns.create(
            "nightly",
            type="payout_sent",
            data=PAYOUT,
            audience={"all": True},
            cron="30 2 * * *",
            timezone="Europe/Berlin",
            end_at=utc(2026, 3, 31),
        )
    assert campaign.next_run_at == utc(2026, 3, 28, 1, 30)
    started: list[datetime] = []
    at = utc(2026, 3, 27, 12)
    while at < utc(2026, 4, 1):
        at += timedelta(minutes=30)
        with freeze_time(at):
            result = runtime(d).campaign_tick()
        if result.started:
            started.append(at)
    occurrences = [r.occurrence for r in reversed(d.campaigns.get(campaign.id).runs)]
    assert occurrences == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]
    # Each started at the first tick at or after its occurrence (ticks every 30 minutes).
    assert [s - o for s, o in zip(started, occurrences, strict=True)] == [timedelta(0)] * 3
    info = d.campaigns.get(campaign.id)
    assert info.next_run_at is None  # the next one is past end_at
    assert all(r.targeted == 3 for r in info.runs)
