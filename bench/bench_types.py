"""A notification type for benchmarks: in-app only, so the numbers measure our pipeline."""

from __future__ import annotations

from pydantic import BaseModel

from dispatcher import NotificationType


class Ping(BaseModel):
    name: str
    n: int


bench_fanout = NotificationType(
    name="bench_fanout", payload=Ping, example={"name": "bench", "n": 1}, channels=("in_app",)
)
