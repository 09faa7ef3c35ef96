"""``d.campaigns``: definitions refused precisely, audiences resolved in the database and
recorded per run, chunks set-based and idempotent, pause/resume/cancel, progress."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest
from sqlalchemy import func, select

from dispatcher import (
    CampaignStateError,
    CampaignStatus,
    Dispatcher,
    InvalidCampaignError,
    NotFoundError,
    PayloadValidationError,
)
from dispatcher.db.models import Campaign, CampaignAudience, Delivery, Notification
from tests.campaigns.support import PAYOUT, add_subscribers, notified, run_all
from tests.conftest import runtime


def count(d: Dispatcher, model: type) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"priority": "urgent"}, "priority", "'urgent' is refused for a campaign"),
        ({"priority": "soon"}, "priority", "unknown priority 'soon'"),
        ({"audience": {}}, "audience", "exactly one of 'all', 'ids', 'filter' or 'segment'"),
        ({"audience": {"all": True, "ids": ["a"]}}, "audience", "exactly one"),
        ({"audience": {"everyone": True}}, "audience", "unknown key(s) ['everyone']"),
        ({"audience": {"ids": []}}, "audience.ids", "audience.ids is empty"),
        ({"audience": {"ids": ["ok", ""]}}, "audience.ids", "audience.ids[1]"),
        ({"audience": {"filter": {"a-b": 1}}}, "audience.filter", "plain identifier"),
        ({"audience": {"filter": {"a": [1]}}}, "audience.filter", "string, number or boolean"),
        ({"channels": ["email"]}, "channels", "has no channel(s) ['email']"),
        ({"send_rates": {"in_app": 0}}, "send_rates", "whole number >= 1"),
        ({"send_rates": {"email": 5}}, "send_rates", "not one of this campaign's channels"),
        ({"cron": "0 9 * *"}, "cron", "expected 5 fields"),
        ({"cron": "61 9 * * *"}, "cron", "values must lie in 0-59"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"start_at": datetime(2030, 1, 1)}, "start_at", "timezone-aware"),
        ({"name": " "}, "name", "1 to 255 characters"),
    ],
)
def test_a_bad_definition_is_refused_precisely_and_nothing_is_stored(
    dispatcher: Dispatcher, changes: dict[str, object], field: str, words: str
) -> None:
    spec: dict[str, object] = {
        "type": "payout_sent",
        "data": PAYOUT,
        "audience": {"all": True},
        **changes,
    }
    name = str(spec.pop("name", "spring"))
    with pytest.raises(InvalidCampaignError) as caught:
        dispatcher.campaigns.create(name, **spec)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert words in str(caught.value)
    assert count(dispatcher, Campaign) == 0


def test_data_is_validated_against_the_type(dispatcher: Dispatcher) -> None:
    with pytest.raises(PayloadValidationError):
        dispatcher.campaigns.create(
            "x", type="payout_sent", data={"payout_id": "nope"}, audience={"all": True}
        )
    assert count(dispatcher, Campaign) == 0


def test_an_attribute_filter_is_evaluated_in_the_database_and_recorded_per_run(
    dispatcher: Dispatcher,
) -> None:
    d = dispatcher

    def attrs(i: int) -> dict[str, object]:
        return {"role": "seller" if i % 2 else "buyer", "region": "north" if i % 3 else "south"}

    add_subscribers(d, 30, attributes=attrs)
    campaign = d.campaigns.create(
        "north sellers",
        type="payout_sent",
        data=PAYOUT,
        audience={"filter": {"role": "seller", "region": "north"}, "exclude": ["s000001"]},
    )
    assert campaign.status == CampaignStatus.DRAFT
    run = d.campaigns.start(campaign.id)
    expected = {f"s{i:06d}" for i in range(30) if i % 2 and i % 3 and i != 1}
    assert run.targeted == len(expected)
    assert count(d, CampaignAudience) == len(expected)
    # The audience is the one recorded at the start: a later change does not move it.
    d.subscribers.upsert("s000000", role="seller", region="north")
    run_all(d, run.id)
    info = d.campaigns.get(campaign.id)
    assert info.status == CampaignStatus.COMPLETED
    latest = info.runs[0]
    assert latest.status == CampaignStatus.COMPLETED
    assert latest.created == len(expected)
    assert latest.progress["sent"] == len(expected)
    for sid in expected:
        assert [i.title for i in d.inbox(sid)] == ["Payout 7 sent"]
    assert d.inbox("s000000") == []
    assert d.inbox("s000001") == []


def test_boolean_and_number_filters_match_on_both_stores(dispatcher: Dispatcher) -> None:
    d = dispatcher
    add_subscribers(d, 6, attributes=lambda i: {"vip": i < 2, "level": i})
    vip = d.campaigns.create(
        "v", type="payout_sent", data=PAYOUT, audience={"filter": {"vip": True}}
    )
    assert d.campaigns.start(vip.id).targeted == 2
    level = d.campaigns.create(
        "l", type="payout_sent", data=PAYOUT, audience={"filter": {"level": 4}}
    )
    assert d.campaigns.start(level.id).targeted == 1


def test_chunks_create_each_recipient_once_even_when_a_chunk_runs_again(
    dispatcher: Dispatcher,
) -> None:
    d = dispatcher
    d.settings.campaign_chunk_size = 7
    ids = add_subscribers(d, 40)
    campaign = d.campaigns.create(
        "all", type="payout_sent", data=PAYOUT, audience={"ids": ids[:25], "exclude": ids[:5]}
    )
    run = d.campaigns.start(campaign.id)
    assert run.targeted == 20
    chunks = run_all(d, run.id)
    assert chunks == 3  # 7 + 7 + 6
    # Chunk messages delivered again (a duplicate, or beat ringing a stalled run).
    for _ in range(3):
        assert runtime(d).campaign_chunk(run.id).created == 0
    pks = notified(d, run.event_id)
    assert len(pks) == len(set(pks)) == 20
    assert count(d, Delivery) == 20
    info = d.campaigns.get(campaign.id).runs[0]
    assert (info.created, info.chunks, info.progress["sent"]) == (20, 3, 20)


def test_pause_holds_the_run_between_chunks_and_resume_goes_on(dispatcher: Dispatcher) -> None:
    d = dispatcher
    d.settings.campaign_chunk_size = 5
    add_subscribers(d, 12)
    campaign = d.campaigns.create("p", type="payout_sent", data=PAYOUT, audience={"all": True})
    run = d.campaigns.start(campaign.id)
    assert runtime(d).campaign_chunk(run.id).created == 5
    paused = d.campaigns.pause(campaign.id)
    assert paused.status == CampaignStatus.PAUSED
    stopped = runtime(d).campaign_chunk(run.id)
    assert (stopped.created, stopped.more, stopped.status) == (0, False, "paused")
    assert count(d, Notification) == 5
    with pytest.raises(CampaignStateError, match="no running run"):
        d.campaigns.pause(campaign.id)
    with pytest.raises(CampaignStateError, match="paused run"):
        d.campaigns.start(campaign.id)
    d.campaigns.resume(campaign.id)
    run_all(d, run.id)
    assert count(d, Notification) == 12
    assert d.campaigns.get(campaign.id).status == CampaignStatus.COMPLETED


def test_cancel_stops_the_run_and_skips_what_was_not_sent(dispatcher: Dispatcher) -> None:
    d = dispatcher
    d.settings.campaign_chunk_size = 4
    add_subscribers(d, 10)
    campaign = d.campaigns.create(
        "c",
        type="payout_sent",
        data=PAYOUT,
        audience={"all": True},
        send_rates={"in_app": 1},  # one a minute: all but the first wait in the database
    )
    run = d.campaigns.start(campaign.id)
    assert runtime(d).campaign_chunk(run.id).created == 4
    cancelled = d.campaigns.cancel(campaign.id)
    assert cancelled.status == CampaignStatus.CANCELLED
    assert runtime(d).campaign_chunk(run.id).created == 0
    with d.store.session() as s:
        rows = s.execute(select(Delivery.status, Delivery.reason)).all()
    assert len(rows) == 4
    assert {(str(st), r) for st, r in rows} == {("skipped", "campaign_cancelled")}
    assert cancelled.runs[0].progress["skipped"] == {"campaign_cancelled": 4}
    with pytest.raises(CampaignStateError, match="already cancelled"):
        d.campaigns.cancel(campaign.id)
    with pytest.raises(CampaignStateError, match="cannot start"):
        d.campaigns.start(campaign.id)
    explained = d.explain(run.event_id or 0)
    assert "campaign_cancelled" in "\n".join(explained.lines())


def test_send_rate_spaces_deliveries_in_the_database(dispatcher: Dispatcher) -> None:
    d = dispatcher
    add_subscribers(d, 5)
    campaign = d.campaigns.create(
        "r", type="payout_sent", data=PAYOUT, audience={"all": True}, send_rates={"in_app": 30}
    )
    run = d.campaigns.start(campaign.id)
    run_all(d, run.id)
    with d.store.session() as s:
        rows = s.execute(
            select(Delivery.status, Delivery.reason, Delivery.scheduled_for).order_by(Delivery.id)
        ).all()
    assert {(str(st), r) for st, r, _ in rows} == {("scheduled", "campaign_rate")}
    gaps = [(b[2] - a[2]).total_seconds() for a, b in pairwise(rows)]
    assert gaps == [2.0, 2.0, 2.0, 2.0]


def test_unknown_campaign(dispatcher: Dispatcher) -> None:
    with pytest.raises(NotFoundError):
        dispatcher.campaigns.get(999)
    with pytest.raises(NotFoundError):
        dispatcher.campaigns.start(999)


def test_a_campaign_with_a_start_time_is_scheduled(dispatcher: Dispatcher) -> None:
    at = datetime(2031, 5, 1, 9, 0, tzinfo=UTC)
    c = dispatcher.campaigns.create(
        "later", type="payout_sent", data=PAYOUT, audience={"all": True}, start_at=at
    )
    assert (c.status, c.next_run_at) == (CampaignStatus.SCHEDULED, at)
    assert [x.id for x in dispatcher.campaigns.list()] == [c.id]
    assert dispatcher.campaigns.list(status="draft") == []


def test_a_type_that_defaults_to_urgent_goes_out_as_high_on_the_bulk_queue(
    dispatcher: Dispatcher,
) -> None:
    from dispatcher import names

    example = dispatcher.catalog.get("system_alert").example
    c = dispatcher.campaigns.create(
        "alert", type="system_alert", data=example, audience={"all": True}
    )
    assert c.priority == "high"
    assert names.for_priority(c.priority, bulk=True) == names.BULK
