"""Recording outcomes: retry back-off."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dispatcher.channels.base import RetryPolicy
from dispatcher.engine.records import backoff


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 12, 40])
def test_backoff_is_bounded_and_grows(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=50, base_seconds=10, cap_seconds=600)
    ceiling = min(600, 10 * 2 ** (attempt - 1))
    for _ in range(50):
        delay = backoff(attempt, policy)
        assert timedelta(seconds=ceiling / 2) <= delay <= timedelta(seconds=ceiling)
