"""The inbox API and the namespaces around it, on both backends."""

from __future__ import annotations

import pytest

from dispatcher import Dispatcher, NotFoundError, ValidationError
from dispatcher.errors import InvalidAddressError, InvalidTimeZoneError
from tests.conftest import runtime


def _deliver_all(d: Dispatcher, *receipts: int) -> None:
    from sqlalchemy import select

    from dispatcher.db.models import Delivery

    for event_id in receipts:
        runtime(d).fanout(event_id)
    with d.store.session() as s:
        runtime(d).deliver(list(s.scalars(select(Delivery.id))))


@pytest.fixture
def two_inboxes(dispatcher: Dispatcher) -> Dispatcher:
    dispatcher.subscribers.upsert("ana")
    dispatcher.subscribers.upsert("luis")
    ids = [
        dispatcher.notify("payout_sent", to=["ana"], data={"payout_id": i, "amount": "1"}).id
        for i in (1, 2, 3)
    ]
    ids.append(
        dispatcher.notify("payout_sent", to=["luis"], data={"payout_id": 9, "amount": "1"}).id
    )
    ids.append(
        dispatcher.notify(
            "system_alert", to=["ana"], data=dispatcher.catalog.get("system_alert").example
        ).id
    )
    _deliver_all(dispatcher, *ids)
    return dispatcher


def test_read_unread_seen_archive_and_counts(two_inboxes: Dispatcher) -> None:
    d, box = two_inboxes, two_inboxes.inboxes
    items = d.inbox("ana")
    assert [i.type for i in items] == ["system_alert", "payout_sent", "payout_sent", "payout_sent"]
    assert box.unread_count("ana") == 4
    box.mark_read("ana", items[0].id)
    assert box.get("ana", items[0].id).read_at is not None
    assert box.unread_count("ana") == 3
    assert [i.id for i in d.inbox("ana", unread_only=True)] == [i.id for i in items[1:]]
    box.mark_unread("ana", items[0].id)
    assert box.unread_count("ana") == 4
    box.mark_seen("ana", items[1].id)
    assert box.get("ana", items[1].id).seen_at is not None
    box.archive("ana", items[2].id)
    assert items[2].id not in [i.id for i in d.inbox("ana")]
    assert [i.id for i in d.inbox("ana", archived=True)] == [items[2].id]
    box.unarchive("ana", items[2].id)
    assert len(d.inbox("ana")) == 4
    assert [i.type for i in d.inbox("ana", category="system")] == ["system_alert"]
    assert len(d.inbox("ana", type="payout_sent")) == 3
    assert box.mark_all_read("ana") == 4
    assert box.unread_count("ana") == 0
    assert box.unread_count("luis") == 1  # untouched
    newer = box.since("ana", items[-1].id)
    assert [i.id for i in newer] == sorted(i.id for i in items[:-1])
    assert items[0].to_dict()["created_at"] == items[0].created_at.isoformat()


def test_someone_elses_notification_is_not_found(two_inboxes: Dispatcher) -> None:
    box = two_inboxes.inboxes
    luis_item = two_inboxes.inbox("luis")[0]
    for action in (box.mark_read, box.mark_unread, box.mark_seen, box.archive, box.unarchive):
        with pytest.raises(NotFoundError, match=f"no notification {luis_item.id} in this inbox"):
            action("ana", luis_item.id)
    with pytest.raises(NotFoundError):
        box.get("ana", luis_item.id)
    assert box.get("luis", luis_item.id).read_at is None
    with pytest.raises(NotFoundError, match="no subscriber 'nobody'"):
        two_inboxes.inbox("nobody")


def test_subscribers_upsert_validates_and_merges(dispatcher: Dispatcher) -> None:
    subs = dispatcher.subscribers
    first = subs.upsert(
        "u1", email="ana@example.com", timezone="Europe/Madrid", locale="es_MX", role="seller"
    )
    assert (first.email, first.timezone, first.locale) == (
        "ana@example.com",
        "Europe/Madrid",
        "es-MX",
    )
    second = subs.upsert("u1", team="north")
    assert second.attributes == {"role": "seller", "team": "north"}
    assert second.email == "ana@example.com"  # untouched fields stay
    with pytest.raises(InvalidAddressError):
        subs.upsert("u1", email="ana@example.com\r\nBcc: evil@example.com")
    with pytest.raises(InvalidTimeZoneError):
        subs.upsert("u1", timezone="Europe/Atlantis")
    with pytest.raises(ValidationError, match="subscriber id"):
        subs.upsert("")
    assert subs.get("u1").email == "ana@example.com"
    subs.upsert("u2")
    assert [s.id for s in subs.list()] == ["u1", "u2"]
    assert [s.id for s in subs.list(after="u1")] == ["u2"]
    assert subs.delete("u2") is True and subs.delete("u2") is False
    with pytest.raises(NotFoundError):
        subs.get("u2")


def test_preferences_api(dispatcher: Dispatcher) -> None:
    prefs = dispatcher.preferences
    dispatcher.subscribers.upsert("u1")
    prefs.set("u1", enabled=False, channel="email")
    prefs.set("u1", enabled=True, channel="email", type="ticket_created")
    prefs.set("u1", enabled=False, category="sales", channel="web_push")
    prefs.set("u1", enabled=False, category="sales", channel="web_push")  # idempotent
    assert len(prefs.rules("u1")) == 3
    matrix = prefs.matrix("u1")
    assert matrix["ticket_created"]["email"].enabled is True
    assert matrix["ticket_cancelled"]["email"].enabled is False
    assert matrix["ticket_cancelled"]["web_push"].because == "category=sales channel=web_push"
    assert matrix["system_alert"]["email"].because == "critical"
    assert prefs.clear("u1", channel="email") is True
    assert prefs.clear("u1", channel="email") is False
    with pytest.raises(ValidationError, match="unknown category 'nope'"):
        prefs.set("u1", enabled=False, category="nope")
    with pytest.raises(ValidationError, match="either type= or category="):
        prefs.set("u1", enabled=False, category="sales", type="ticket_created")
    with pytest.raises(ValidationError, match="unknown channel 'sms'"):
        prefs.set("u1", enabled=False, channel="sms")
    with pytest.raises(NotFoundError):
        prefs.set("ghost", enabled=False)
