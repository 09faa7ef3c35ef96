"""The dry run: counts per channel (would send, opted out, in quiet hours now, without an
address, rate limited), a rendered sample per locale, and no row or counter written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
from freezegun import freeze_time
from pydantic import BaseModel
from sqlalchemy import func, select

from dispatcher import Dispatcher, NotificationType, RateLimit
from dispatcher.db.models import Base
from tests.campaigns.support import add_subscribers, use_campaign_templates
from tests.conftest import make_settings, runtime
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)


class Note(BaseModel):
    note: str


LIMITED = NotificationType(
    name="campaign_greeting",
    payload=Note,
    example={"note": "hi"},
    channels=("in_app",),
    rate_limits={"in_app": RateLimit(count=1, per_seconds=3600)},
)


def snapshot(d: Dispatcher) -> dict[str, Any]:
    """Every table's row count and every Redis key under the test prefix."""
    with d.store.session() as s:
        counts = {
            t.name: s.scalar(select(func.count()).select_from(t))
            for t in Base.metadata.sorted_tables
        }
    with redis.Redis.from_url(d.settings.redis_url) as r:
        keys = sorted(r.scan_iter(f"{d.settings.redis_prefix}:*"))
        values = {k: r.dump(k) for k in keys}
    return {"rows": counts, "redis": values}


def test_preview_counts_reasons_per_channel_and_writes_nothing(
    database_url: str, dispatcher: Dispatcher, smtp_server: SmtpServer
) -> None:
    d = Dispatcher(make_settings(database_url, smtp=smtp_server.settings()))
    try:
        add_subscribers(d, 6, locale="en")
        add_subscribers(d, 3, start=6, locale="es")
        d.subscribers.upsert("s000000", email=None)  # no address for email
        d.preferences.set("s000001", enabled=False, channel="email", type="report_generated")
        d.preferences.set("s000002", enabled=False, channel="*", category="reports")
        d.quiet_hours.set("s000003", [("22:00", "07:00")])
        data = d.catalog.get("report_generated").example
        campaign = d.campaigns.create(
            "r", type="report_generated", data=data, audience={"all": True, "exclude": ["s000008"]}
        )
        before = snapshot(d)
        with freeze_time(datetime(2026, 12, 1, 23, 0, tzinfo=UTC)):
            preview = d.campaigns.preview(campaign.id)
        assert snapshot(d) == before
        assert preview.targeted == 8
        in_app, email = preview.channels["in_app"], preview.channels["email"]
        # s2 turned the whole category off; in-app in quiet hours is stored without a ping.
        assert (in_app.would_send, in_app.opted_out, in_app.in_quiet_hours) == (7, 1, 1)
        assert (in_app.no_address, in_app.rate_limited, in_app.not_configured) == (0, 0, 0)
        # s0 has no email; s1 and s2 opted out; s3 is in quiet hours (deferred).
        assert (email.no_address, email.opted_out, email.in_quiet_hours) == (1, 2, 1)
        assert email.would_send == 4
        assert set(preview.samples) == {"en", "es"}
        assert preview.samples["en"]["email"]["subject"] == "Report ready: Weekly sales"
        assert preview.samples["es"]["in_app"]["title"] != preview.samples["en"]["in_app"]["title"]
        assert preview.to_dict()["channels"]["email"]["would_send"] == 4
    finally:
        d.close()


def test_preview_reads_rate_limits_without_using_them(dispatcher: Dispatcher) -> None:
    d = dispatcher
    d.register(LIMITED)
    use_campaign_templates(d)
    add_subscribers(d, 3)
    receipt = d.notify("campaign_greeting", to="s000001", data={"note": "first"})
    runtime(d).fanout(receipt.id)
    with d.store.session() as s:
        from dispatcher.db.models import Delivery

        ids = list(s.scalars(select(Delivery.id)))
    runtime(d).deliver(ids)  # s1 used its one in-app per hour
    campaign = d.campaigns.create(
        "g", type="campaign_greeting", data={"note": "n"}, audience={"all": True}
    )
    before = snapshot(d)
    preview = d.campaigns.preview(campaign.id)
    assert snapshot(d) == before
    assert (preview.channels["in_app"].rate_limited, preview.channels["in_app"].would_send) == (
        1,
        2,
    )
