"""``notify(actor=...)``: stored on the event, shown to templates, inbox items and sockets;
the actor is not notified of what they did unless the type says so (``explain`` says why)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import redis
from sqlalchemy import select

from dispatcher import Dispatcher, InvalidIdentifierError, names
from dispatcher.db.models import Delivery
from tests.conftest import runtime

TICKET = {
    "ticket_id": 9,
    "event_name": "Final",
    "seller": "Luis",
    "amount": "45.00",
    "currency": "EUR",
}


def deliver_all(d: Dispatcher, event_id: int) -> None:
    rt = runtime(d)
    rt.fanout(event_id)
    with d.store.session() as s:
        pending = s.scalars(select(Delivery.id).where(Delivery.status == "pending")).all()
    rt.deliver(list(pending))


@pytest.fixture
def people(dispatcher: Dispatcher) -> Dispatcher:
    for who in ("luis", "ana"):
        dispatcher.subscribers.upsert(who, email=f"{who}@example.com")
    return dispatcher


def test_the_actor_is_skipped_and_explain_says_why(people: Dispatcher) -> None:
    d = people
    receipt = d.notify("ticket_created", to=["luis", "ana"], data=TICKET, actor="luis")
    deliver_all(d, receipt.id)
    assert d.inbox("luis") == []
    (item,) = d.inbox("ana")
    assert item.actor == "luis"
    assert item.to_dict()["actor"] == "luis"

    explanation = d.explain(receipt.id)
    assert explanation.actor == "luis"
    luis = next(r for r in explanation.recipients if r.subscriber_id == "luis")
    assert luis.deliveries
    assert {d.summary for d in luis.deliveries} == {"skipped: actor (caused the event)"}
    text = "\n".join(explanation.lines())
    assert "actor luis" in text
    assert "skipped: actor (caused the event)" in text


def test_a_type_may_notify_its_actor(people: Dispatcher) -> None:
    d = people
    d.catalog.register(replace(d.catalog.get("ticket_created"), notify_actor=True), replace=True)
    receipt = d.notify("ticket_created", to=["luis"], data=TICKET, actor="luis")
    deliver_all(d, receipt.id)
    (item,) = d.inbox("luis")
    assert item.actor == "luis"


def test_templates_and_the_socket_message_see_the_actor(people: Dispatcher) -> None:
    d = people
    d.templates.save(
        "ticket_created", "in_app", "en", "title", "{{ actor or 'someone' }} sold a ticket"
    )
    client = redis.Redis.from_url(d.settings.redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe(names.inbox_channel(d.settings.redis_prefix, "ana"))
    pubsub.get_message(timeout=1)  # the subscription's confirmation
    receipt = d.notify("ticket_created", to=["ana"], data=TICKET, actor="luis")
    deliver_all(d, receipt.id)
    (item,) = d.inbox("ana")
    assert item.title == "luis sold a ticket"
    message = pubsub.get_message(timeout=5)
    assert message is not None
    sent = json.loads(message["data"])
    assert sent["notification"]["actor"] == "luis"
    assert sent["notification"]["title"] == "luis sold a ticket"
    pubsub.close()
    client.close()

    without = d.notify("ticket_created", to=["ana"], data={**TICKET, "ticket_id": 10})
    deliver_all(d, without.id)
    newest = d.inbox("ana")[0]
    assert (newest.title, newest.actor) == ("someone sold a ticket", None)


def test_a_bad_actor_is_refused(people: Dispatcher) -> None:
    with pytest.raises(InvalidIdentifierError, match="actor"):
        people.notify("ticket_created", to=["ana"], data=TICKET, actor="a\nb")
