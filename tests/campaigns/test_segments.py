"""Named, reusable segments: saved and refused precisely, resolved when a run starts (an
edit made after the campaign was saved applies), combined with an exclusion list, kept
while a campaign that may still run names them, and seen by the dry run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from dispatcher import (
    CampaignStatus,
    Dispatcher,
    InvalidCampaignError,
    NotFoundError,
    SegmentInUseError,
    ValidationError,
)
from dispatcher.db.models import Campaign, Segment, Subscriber
from tests.campaigns.support import PAYOUT, add_subscribers, notified, run_all
from tests.conftest import StartWorker, wait_for
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)


def count(d: Dispatcher, model: type) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def people(d: Dispatcher) -> None:
    """s000000..s000011: role seller for even numbers, region north below 6."""
    add_subscribers(
        d,
        12,
        attributes=lambda i: {
            "role": "seller" if i % 2 == 0 else "buyer",
            "region": "north" if i < 6 else "south",
        },
    )


def external_ids(d: Dispatcher, event_id: int | None) -> list[str]:
    pks = notified(d, event_id)
    with d.store.session() as s:
        by_pk = {pk: ext for pk, ext in s.execute(select(Subscriber.id, Subscriber.external_id))}
    return sorted(by_pk[pk] for pk in pks)


@pytest.mark.parametrize(
    ("name", "where", "error", "field", "words"),
    [
        ("North", {"role": "seller"}, InvalidCampaignError, "name", "lower-case letters"),
        ("", {"role": "seller"}, InvalidCampaignError, "name", "segment name ''"),
        ("n", {}, InvalidCampaignError, "filter", "non-empty object"),
        ("n", {"a-b": 1}, InvalidCampaignError, "filter", "plain identifier"),
        ("n", {"a": [1]}, InvalidCampaignError, "filter", "string, number or boolean"),
    ],
)
def test_a_bad_segment_is_refused_precisely_and_nothing_is_stored(
    dispatcher: Dispatcher,
    name: str,
    where: dict[str, Any],
    error: type[Exception],
    field: str,
    words: str,
) -> None:
    with pytest.raises(error) as caught:
        dispatcher.campaigns.segments.create(name, where)
    assert getattr(caught.value, "field", None) == field
    assert words in str(caught.value)
    assert count(dispatcher, Segment) == 0


def test_create_list_show_update_delete(dispatcher: Dispatcher) -> None:
    segments = dispatcher.campaigns.segments
    made = segments.create("north-sellers", {"role": "seller", "region": "north"}, description="N")
    assert (made.name, made.filter, made.description) == (
        "north-sellers",
        {"role": "seller", "region": "north"},
        "N",
    )
    with pytest.raises(InvalidCampaignError, match="a segment named 'north-sellers' exists"):
        segments.create("north-sellers", {"role": "buyer"})
    with pytest.raises(ValidationError, match="description must be a string"):
        segments.create("long", {"role": "buyer"}, description="x" * 2001)
    segments.create("buyers", {"role": "buyer"})
    assert [s.name for s in segments.list()] == ["buyers", "north-sellers"]
    changed = segments.update("north-sellers", filter={"region": "north"})
    assert changed.filter == {"region": "north"} and changed.description == "N"
    assert changed.updated_at >= made.updated_at
    assert segments.get("north-sellers").filter == {"region": "north"}
    with pytest.raises(InvalidCampaignError):
        segments.update("north-sellers", filter={"region": ["x"]})
    assert segments.get("north-sellers").filter == {"region": "north"}
    segments.delete("buyers")
    with pytest.raises(NotFoundError, match="no segment 'buyers'"):
        segments.get("buyers")
    with pytest.raises(NotFoundError):
        segments.delete("buyers")
    with pytest.raises(NotFoundError):
        segments.update("buyers", description="x")


def test_a_campaign_to_a_segment_reaches_its_members_minus_exclusions(
    dispatcher: Dispatcher,
) -> None:
    d = dispatcher
    people(d)
    d.campaigns.segments.create("north-sellers", {"role": "seller", "region": "north"})
    campaign = d.campaigns.create(
        "n",
        type="payout_sent",
        data=PAYOUT,
        audience={"segment": "north-sellers", "exclude": ["s000002"]},
    )
    assert campaign.audience == {"segment": "north-sellers", "exclude": ["s000002"]}
    run = d.campaigns.start(campaign.id)
    assert run.targeted == 2
    run_all(d, run.id)
    assert external_ids(d, run.event_id) == ["s000000", "s000004"]


def test_a_segment_edited_before_the_run_starts_applies(dispatcher: Dispatcher) -> None:
    d = dispatcher
    people(d)
    d.campaigns.segments.create("target", {"role": "seller", "region": "north"})
    campaign = d.campaigns.create(
        "t", type="payout_sent", data=PAYOUT, audience={"segment": "target"}
    )
    preview = d.campaigns.preview(campaign.id)
    assert preview.targeted == 3  # s0, s2, s4
    d.campaigns.segments.update("target", filter={"role": "buyer", "region": "south"})
    assert d.campaigns.preview(campaign.id).targeted == 3  # s7, s9, s11
    run = d.campaigns.start(campaign.id)
    run_all(d, run.id)
    assert external_ids(d, run.event_id) == ["s000007", "s000009", "s000011"]
    # Recorded per run: a later edit does not touch the run that started.
    d.campaigns.segments.update("target", filter={"role": "nobody"})
    assert d.campaigns.get(campaign.id).runs[0].targeted == 3


def test_a_campaign_naming_a_missing_segment_is_refused(dispatcher: Dispatcher) -> None:
    with pytest.raises(InvalidCampaignError) as caught:
        dispatcher.campaigns.create(
            "x", type="payout_sent", data=PAYOUT, audience={"segment": "ghosts"}
        )
    assert caught.value.field == "audience.segment"
    assert "no segment 'ghosts'" in str(caught.value)
    with pytest.raises(InvalidCampaignError) as malformed:
        dispatcher.campaigns.create(
            "x", type="payout_sent", data=PAYOUT, audience={"segment": "Ghosts!"}
        )
    assert malformed.value.field == "audience.segment"
    assert count(dispatcher, Campaign) == 0


def test_deleting_a_segment_a_campaign_may_still_run_with_is_refused(
    dispatcher: Dispatcher,
) -> None:
    d = dispatcher
    d.campaigns.segments.create("vip", {"plan": "gold"})
    scheduled = d.campaigns.create(
        "later",
        type="payout_sent",
        data=PAYOUT,
        audience={"segment": "vip"},
        start_at=datetime.now(UTC) + timedelta(days=1),
    )
    draft = d.campaigns.create(
        "draft", type="payout_sent", data=PAYOUT, audience={"segment": "vip"}
    )
    assert scheduled.status == "scheduled" and draft.status == "draft"
    with pytest.raises(SegmentInUseError) as caught:
        d.campaigns.segments.delete("vip")
    assert caught.value.segment == "vip"
    assert caught.value.campaigns == [scheduled.id, draft.id]
    assert str(caught.value).startswith(
        f"segment 'vip' is used by campaign(s) {scheduled.id} (scheduled), {draft.id} (draft)"
    )
    assert d.campaigns.segments.get("vip").filter == {"plan": "gold"}
    d.campaigns.cancel(scheduled.id)
    with pytest.raises(SegmentInUseError) as still:
        d.campaigns.segments.delete("vip")
    assert still.value.campaigns == [draft.id]
    d.campaigns.cancel(draft.id)
    d.campaigns.segments.delete("vip")
    assert count(d, Segment) == 0


#: The campaign worker tests' environment (as tests/campaigns/test_worker.py): one worker
#: per backend serves them all.
CHUNKED = {
    "DISPATCHER_CAMPAIGN_CHUNK_SIZE": "10",
    "DISPATCHER_LEASE_SECONDS": "3",
    "DISPATCHER_SMTP_BACKOFF_BASE_SECONDS": "0.2",
    "DISPATCHER_SMTP_BACKOFF_CAP_SECONDS": "0.4",
}


def test_a_segment_run_through_a_worker_reaches_exactly_its_members_minus_exclusions(
    dispatcher: Dispatcher, start_worker: StartWorker, smtp_server: SmtpServer
) -> None:
    d = dispatcher
    start_worker(smtp_server.env(**CHUNKED))
    # 60 people: sellers are multiples of 3, north the first 40.
    add_subscribers(
        d,
        60,
        attributes=lambda i: {
            "role": "seller" if i % 3 == 0 else "buyer",
            "region": "north" if i < 40 else "south",
        },
    )
    d.campaigns.segments.create("north-sellers", {"role": "buyer"})
    campaign = d.campaigns.create(
        "w",
        type="payout_sent",
        data=PAYOUT,
        audience={"segment": "north-sellers", "exclude": ["s000003", "s000039", "s000042"]},
    )
    # Edited after the campaign was saved, before its run: the edit applies.
    d.campaigns.segments.update("north-sellers", filter={"role": "seller", "region": "north"})
    d.campaigns.start(campaign.id)
    wait_for(lambda: d.campaigns.get(campaign.id).status == CampaignStatus.COMPLETED, timeout=60)
    run = d.campaigns.get(campaign.id).runs[0]
    wait_for(lambda: d.campaigns.get(campaign.id).runs[0].progress["sent"] == run.targeted)
    expected = [f"s{i:06d}" for i in range(0, 40, 3) if i not in (3, 39)]
    assert run.targeted == len(expected) == 12
    assert external_ids(d, run.event_id) == expected
