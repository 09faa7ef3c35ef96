"""A socket remembers the ids it sent for a while and up to a cap, so that what it holds
follows recent traffic, not how long the socket has been open."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.gateway.sent_ids import SentIds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_duplicate_within_the_window_is_dropped_and_one_after_it_is_not() -> None:
    clock = Clock()
    sent = SentIds(seconds=120, at_most=100, clock=clock)
    assert sent.first_time(7) is True
    clock.now += 119
    assert sent.first_time(7) is False  # a resume racing the live copy
    clock.now += 2  # 121 s after the first copy
    assert sent.first_time(7) is True


def test_a_long_lived_socket_holds_only_the_recent_ids() -> None:
    clock = Clock()
    sent = SentIds(seconds=120, at_most=4096, clock=clock)
    for n in range(3600):  # one notification a second for an hour
        assert sent.first_time(n) is True
        clock.now += 1
    assert len(sent) == 121  # the last 120 s, both ends included


def test_a_burst_is_capped_and_the_oldest_are_forgotten_first() -> None:
    clock = Clock()
    sent = SentIds(seconds=120, at_most=1000, clock=clock)
    for n in range(1500):  # a resume replay and live messages in the same instant
        sent.first_time(n)
    assert len(sent) == 1000
    assert sent.first_time(1499) is False
    assert sent.first_time(0) is True  # forgotten: the cap came first


@given(st.lists(st.integers(min_value=1, max_value=50), max_size=300))
def test_within_the_window_and_the_cap_every_id_passes_exactly_once(ids: list[int]) -> None:
    sent = SentIds(seconds=120, at_most=100, clock=Clock())
    passed = [n for n in ids if sent.first_time(n)]
    assert passed == list(dict.fromkeys(ids))
