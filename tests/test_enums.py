"""Statuses and reasons."""

from __future__ import annotations

from dispatcher.enums import DeliveryStatus


def test_final_statuses() -> None:
    assert {s for s in DeliveryStatus if s.is_final} == {
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.SKIPPED,
    }
