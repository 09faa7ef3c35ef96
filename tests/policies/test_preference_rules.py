"""Preference resolution: the most specific rule wins (a table of cases)."""

from __future__ import annotations

import pytest

from dispatcher.policies.preference import PreferenceRule, resolve
from dispatcher.seed_types import default_catalog

T = default_catalog().get("ticket_updated")


ALERT = default_catalog().get("system_alert")


@pytest.mark.parametrize(
    ("rules", "ntype", "channel", "enabled", "because"),
    [
        ([], T, "in_app", True, "default"),
        ([], T, "email", False, "default"),
        ([("all", "", "*", False)], T, "in_app", False, "all channel=*"),
        (
            [("all", "", "*", False), ("category", "sales", "in_app", True)],
            T,
            "in_app",
            True,
            "category=sales channel=in_app",
        ),
        (
            [("type", "ticket_updated", "email", True), ("type", "ticket_updated", "*", False)],
            T,
            "email",
            True,
            "type=ticket_updated channel=email",
        ),
        (
            [("type", "ticket_updated", "*", False), ("category", "sales", "web_push", True)],
            T,
            "web_push",
            False,
            "type=ticket_updated channel=*",
        ),
        ([("all", "", "email", False)], ALERT, "email", True, "critical"),
        ([("type", "system_alert", "*", False)], ALERT, "in_app", True, "critical"),
        (
            [("type", "system_alert", "*", False)],
            ALERT,
            "web_push",
            False,
            "type=system_alert channel=*",
        ),
    ],
)
def test_most_specific_preference_wins(rules, ntype, channel, enabled, because) -> None:  # type: ignore[no-untyped-def]
    result = resolve([PreferenceRule(*r) for r in rules], ntype, channel)
    assert (result.enabled, result.because) == (enabled, because)
