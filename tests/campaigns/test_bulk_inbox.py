"""Set-based in-app for a chunk: inbox rows written with their content by one statement,
pings published in one call, and recipients with rules of their own decided as a
single event's would be (opted out → skipped with its reason; quiet hours → stored
without a ping)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import redis
from freezegun import freeze_time
from sqlalchemy import select

from dispatcher import Dispatcher
from dispatcher.db.models import Delivery, DeliveryStep
from tests.campaigns.support import PAYOUT, add_subscribers, run_all


def test_regular_members_in_bulk_and_rules_of_their_own_the_ordinary_way(
    dispatcher: Dispatcher,
) -> None:
    d = dispatcher
    ids = add_subscribers(d, 10)
    d.preferences.set(ids[1], enabled=False, channel="in_app", type="payout_sent")
    d.quiet_hours.set(ids[2], [("22:00", "07:00")])
    client = redis.Redis.from_url(d.settings.redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(f"{d.settings.redis_prefix}:inbox:*")
    time.sleep(0.2)
    campaign = d.campaigns.create("b", type="payout_sent", data=PAYOUT, audience={"all": True})
    with freeze_time(datetime(2026, 12, 1, 23, 30, tzinfo=UTC)):
        run = d.campaigns.start(campaign.id)
        run_all(d, run.id)
    heard: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + 5
    while len(heard) < 8 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is not None:
            body = json.loads(message["data"])
            heard[body["subscriber"]] = body["notification"]
    pubsub.close()
    client.close()
    # Everyone but the opted-out (skipped) and the quiet one (stored silently) is pinged.
    assert set(heard) == set(ids) - {ids[1], ids[2]}
    ping = heard[ids[0]]
    assert (ping["title"], ping["type"], ping["data"]) == ("Payout 7 sent", "payout_sent", PAYOUT)
    assert [i.id for i in d.inbox(ids[0])] == [ping["id"]]
    assert d.inbox(ids[1]) == []
    assert [i.title for i in d.inbox(ids[2])] == ["Payout 7 sent"]
    with d.store.session() as s:
        rows = s.execute(select(Delivery.status, Delivery.reason, Delivery.attempts)).all()
        steps = s.execute(select(DeliveryStep.reason)).scalars().all()
    assert sorted((str(st), r, a) for st, r, a in rows) == sorted(
        [("sent", None, 1)] * 9 + [("skipped", "opted_out", 1)]
    )
    assert steps == ["opted_out"]
    progress = d.campaigns.get(campaign.id).runs[0].progress
    assert (progress["sent"], progress["skipped"]) == (9, {"opted_out": 1})
    assert "opted_out" in "\n".join(d.explain(run.event_id or 0).lines())


def test_a_subscriber_deleted_after_the_run_started_is_dropped_not_an_error(
    dispatcher: Dispatcher,
) -> None:
    """The recorded audience keeps plain ids (no foreign keys, migration 0008): a member
    deleted mid-run is left out by the chunk's join with subscribers, on the bulk path and
    on the ordinary one (a member with rules of their own), and the others all get it."""
    d = dispatcher
    ids = add_subscribers(d, 6)
    d.quiet_hours.set(ids[4], [("22:00", "07:00")])  # the ordinary way
    campaign = d.campaigns.create("b", type="payout_sent", data=PAYOUT, audience={"all": True})
    run = d.campaigns.start(campaign.id)
    assert d.campaigns.get(campaign.id).runs[0].targeted == 6
    assert d.subscribers.delete(ids[1]) and d.subscribers.delete(ids[4])
    run_all(d, run.id)
    kept = [ids[0], ids[2], ids[3], ids[5]]
    assert all([i.title for i in d.inbox(s)] == ["Payout 7 sent"] for s in kept)
    with d.store.session() as s:
        rows = s.execute(select(Delivery.status)).scalars().all()
    assert sorted(str(r) for r in rows) == ["sent"] * 4
    assert d.campaigns.get(campaign.id).runs[0].progress["sent"] == 4
