"""The notification type ``bench/realtime.py`` sends (loaded by its worker)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from dispatcher import NotificationType, Priority


class BenchPing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int


bench_ping = NotificationType(
    name="bench_ping",
    payload=BenchPing,
    example={"seq": 1},
    channels=("in_app",),
    priority=Priority.HIGH,
    category="bench",
)
