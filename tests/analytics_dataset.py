"""A known set of delivery rows, written straight to the tables, and what analytics must say
about it. Used by the analytics, CLI, metrics and admin-page tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher import Dispatcher
from dispatcher.db.models import (
    Campaign,
    Click,
    Delivery,
    DeliveryStep,
    Event,
    Notification,
    Subscriber,
)
from dispatcher.enums import DeliveryStatus, EventStatus, Priority

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TODAY = "2026-11-30"
YESTERDAY = "2026-11-29"


def seed(d: Dispatcher, now: datetime = NOW) -> None:
    """Write the dataset. ``EXPECTED`` lists what it adds up to."""
    today = now - timedelta(hours=1)
    yesterday = now - timedelta(days=1, hours=1)
    with d.store.session(write=True) as s:
        sub = Subscriber(external_id="analytics-ana", email="ana@example.com")
        campaign = Campaign(name="Winter sale", type="payout_sent", status="running")
        s.add_all([sub, campaign])
        s.flush()

        def delivery(
            type_name: str,
            channel: str,
            status: DeliveryStatus,
            created: datetime,
            *,
            latency: float | None = None,
            reason: str | None = None,
            steps: tuple[tuple[DeliveryStatus, str], ...] = (),
            seen: bool = False,
            read: bool = False,
            clicks: int = 0,
            campaign_id: int | None = None,
        ) -> None:
            event = Event(
                type=type_name,
                payload={},
                recipients=["analytics-ana"],
                priority=Priority.MEDIUM,
                send_at=created,
                status=EventStatus.FANNED_OUT,
                created_at=created,
                campaign_id=campaign_id,
            )
            s.add(event)
            s.flush()
            notification = Notification(
                event_id=event.id,
                subscriber_id=sub.id,
                type=type_name,
                category="test",
                priority=Priority.MEDIUM,
                created_at=created,
                seen_at=created if seen else None,
                read_at=created if read else None,
            )
            s.add(notification)
            s.flush()
            row = Delivery(
                notification_id=notification.id,
                channel=channel,
                priority=Priority.MEDIUM,
                status=status,
                attempts=1,
                scheduled_for=created,
                reason=reason,
                created_at=created,
                updated_at=created,
                sent_at=created + timedelta(seconds=latency) if latency is not None else None,
            )
            s.add(row)
            s.flush()
            for step_status, step_reason in steps:
                s.add(
                    DeliveryStep(
                        delivery_id=row.id, at=created, status=step_status, reason=step_reason
                    )
                )
            for i in range(clicks):
                s.add(
                    Click(
                        delivery_id=row.id,
                        url="https://example.com/t",
                        clicked_at=created + timedelta(minutes=i),
                    )
                )

        sent, skipped, failed = DeliveryStatus.SENT, DeliveryStatus.SKIPPED, DeliveryStatus.FAILED
        quiet = ((DeliveryStatus.SCHEDULED, "quiet_hours"),)
        retry = ((DeliveryStatus.SCHEDULED, "retrying"),)
        for latency, extra in ((1, {"clicks": 2}), (2, {"clicks": 1}), (3, {}), (4, {})):
            delivery("ticket_created", "email", sent, today, latency=latency, **extra)  # type: ignore[arg-type]
        delivery("ticket_created", "email", sent, today, latency=10, steps=quiet + retry)
        delivery("ticket_created", "email", DeliveryStatus.SCHEDULED, today, steps=quiet)
        for _ in range(2):
            delivery("ticket_created", "email", skipped, today, reason="opted_out")
        delivery("ticket_created", "email", failed, today, reason="rejected", steps=retry)
        for seen, read in ((True, True), (True, True), (True, False), (False, False)):
            delivery("ticket_created", "in_app", sent, today, latency=0.5, seen=seen, read=read)
        for latency in (2, 4):
            delivery(
                "payout_sent",
                "web_push",
                sent,
                yesterday,
                latency=latency,
                clicks=1 if latency == 2 else 0,
                campaign_id=campaign.id,
            )
        delivery(
            "payout_sent",
            "web_push",
            failed,
            yesterday,
            reason="retries_exhausted",
            campaign_id=campaign.id,
        )


#: What the dataset adds up to, per (type, channel, day).
EXPECTED: dict[tuple[str, str, str], dict[str, Any]] = {
    ("ticket_created", "email", TODAY): {
        "dispatched": 9,
        "sent": 5,
        "skipped": {"opted_out": 2},
        "failed": {"rejected": 1},
        "deferred": 2,
        "in_flight": 1,
        "latency_p50": 3.0,
        "latency_p95": 8.8,  # ranks 3 and 4 of [1, 2, 3, 4, 10]: 4 + 0.8 * 6
        "seen": 0,
        "read": 0,
        "clicks": 3,
        "clicked": 2,
    },
    ("ticket_created", "in_app", TODAY): {
        "dispatched": 4,
        "sent": 4,
        "skipped": {},
        "failed": {},
        "deferred": 0,
        "in_flight": 0,
        "latency_p50": 0.5,
        "latency_p95": 0.5,
        "seen": 3,
        "read": 2,
        "clicks": 0,
        "clicked": 0,
    },
    ("payout_sent", "web_push", YESTERDAY): {
        "dispatched": 3,
        "sent": 2,
        "skipped": {},
        "failed": {"retries_exhausted": 1},
        "deferred": 0,
        "in_flight": 0,
        "latency_p50": 3.0,
        "latency_p95": 3.9,
        "seen": 0,
        "read": 0,
        "clicks": 1,
        "clicked": 1,
    },
}
#: The campaign's progress: its three web push deliveries.
CAMPAIGN = {"name": "Winter sale", "deliveries": 3, "sent": 2, "failed": 1, "skipped": 0}
