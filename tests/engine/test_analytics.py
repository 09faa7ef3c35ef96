"""Engagement analytics (``Dispatcher.analytics``) on a known dataset, on both stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dispatcher import Dispatcher, ValidationError
from dispatcher.engine.analytics import parse_window
from tests.analytics_dataset import CAMPAIGN, EXPECTED, NOW, seed


def test_every_figure_of_the_known_dataset(dispatcher: Dispatcher) -> None:
    seed(dispatcher)
    report = dispatcher.analytics.report(now=NOW)
    got = {(r.type, r.channel, r.day): r for r in report.rows}
    assert set(got) == set(EXPECTED)
    for key, expected in EXPECTED.items():
        row = got[key]
        for name, value in expected.items():
            actual = getattr(row, name)
            if name.startswith("latency"):
                assert actual == pytest.approx(value, abs=1e-3), (key, name)
            else:
                assert actual == value, (key, name)
    in_app = got[("ticket_created", "in_app", "2026-11-30")].to_dict()
    assert (in_app["seen_rate"], in_app["read_rate"], in_app["click_rate"]) == (0.75, 0.5, None)
    email = got[("ticket_created", "email", "2026-11-30")].to_dict()
    assert (email["seen_rate"], email["click_rate"]) == (None, 0.4)
    totals = report.totals()
    assert totals["dispatched"] == 16 and totals["sent"] == 11
    assert totals["skipped"] == 2 and totals["failed"] == 2 and totals["clicks"] == 4
    (campaign,) = report.campaigns
    assert {k: getattr(campaign, k) for k in CAMPAIGN} == CAMPAIGN
    assert campaign.settled == 3


def test_since_leaves_out_older_days(dispatcher: Dispatcher) -> None:
    seed(dispatcher)
    report = dispatcher.analytics.report(since="1d", now=NOW)
    assert {r.channel for r in report.rows} == {"email", "in_app"}
    assert report.since == NOW - timedelta(days=1)
    assert dispatcher.analytics.report(since="30m", now=NOW).rows == []
    assert report.to_dict()["totals"]["dispatched"] == 13


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("15m", timedelta(minutes=15)),
        ("2w", timedelta(weeks=2)),
        (" 30s ", timedelta(seconds=30)),
    ],
)
def test_windows(text: str, expected: timedelta) -> None:
    assert parse_window(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "0h", "-1h", "1y", "1.5h", "1h30m", "9999999d"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="since"):
        parse_window(text)
