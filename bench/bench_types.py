"""A notification type for benchmarks: in-app only, so the numbers measure our pipeline."""

from __future__ import annotations

from pydantic import BaseModel

from dispatcher import NotificationType, Priority


class Ping(BaseModel):
    name: str
    n: int


bench_fanout = NotificationType(
    name="bench_fanout", payload=Ping, example={"name": "bench", "n": 1}, channels=("in_app",)
)


class Urgent(BaseModel):
    seq: int


#: Sent during a campaign by ``bench/campaign.py`` to measure urgent latency.
bench_urgent = NotificationType(
    name="bench_urgent",
    payload=Urgent,
    example={"seq": 1},
    channels=("in_app",),
    priority=Priority.URGENT,
)


#: What ``bench/campaign.py`` sends: content that reads no recipient field, as most
#: campaign content does (rendered once per locale).
bench_campaign = NotificationType(
    name="bench_campaign",
    payload=Ping,
    example={"name": "bench", "n": 1},
    channels=("in_app",),
    priority=Priority.LOW,
)


#: ``bench/campaign.py --email``: the same campaign in-app and by email. The email reads
#: the recipient's own links (unsubscribe, preferences), so it is rendered per recipient,
#: as a real campaign email is.
bench_campaign_email = NotificationType(
    name="bench_campaign_email",
    payload=Ping,
    example={"name": "bench", "n": 1},
    channels=("in_app", "email"),
    priority=Priority.LOW,
)
