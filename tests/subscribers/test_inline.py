"""Inline recipients: ``notify(to=[{"id": ..., "email": ...}, "u2"])`` upserts them in the
event's own transaction, and refuses bad ones precisely without writing a row."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatcher import (
    Dispatcher,
    InvalidAddressError,
    InvalidIdentifierError,
    InvalidLocaleError,
    InvalidTimeZoneError,
    UnknownSubscriberError,
    UnstorableValueError,
    ValidationError,
)
from dispatcher.db.models import Event, Subscriber

TICKET = {
    "ticket_id": 7,
    "event_name": "Final",
    "seller": "Luis",
    "amount": "45.00",
    "currency": "EUR",
}
ANA = {"id": "ana", "email": "ana@example.com", "timezone": "Europe/Madrid", "locale": "es"}


def counts(d: Dispatcher) -> tuple[int, int]:
    with d.store.session() as s:
        events = s.scalar(select(func.count()).select_from(Event))
        people = s.scalar(select(func.count()).select_from(Subscriber))
        return int(events or 0), int(people or 0)


def test_inline_recipients_are_created_with_the_event(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1")
    receipt = dispatcher.notify(
        "ticket_created", to=[ANA, "u1", {"id": "bo", "plan": "pro"}], data=TICKET
    )
    assert receipt.recipients == 3
    ana = dispatcher.subscribers.get("ana")
    assert (ana.email, ana.timezone, ana.locale) == ("ana@example.com", "Europe/Madrid", "es")
    bo = dispatcher.subscribers.get("bo")
    assert (bo.email, bo.timezone, bo.attributes) == (None, "UTC", {"plan": "pro"})
    with dispatcher.store.session() as s:
        assert s.scalar(select(Event.recipients)) == ["ana", "u1", "bo"]


def test_inline_recipients_update_only_the_fields_they_give(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("ana", email="old@example.com", timezone="UTC", team="a")
    dispatcher.notify("ticket_created", to=[{"id": "ana", "locale": "es-MX"}], data=TICKET)
    ana = dispatcher.subscribers.get("ana")
    assert (ana.email, ana.timezone, ana.locale) == ("old@example.com", "UTC", "es-MX")
    assert ana.attributes == {"team": "a"}
    dispatcher.notify(
        "ticket_created", to=[{"id": "ana", "plan": "pro", "email": None}], data=TICKET
    )
    ana = dispatcher.subscribers.get("ana")
    assert (ana.email, ana.locale, ana.attributes) == (None, "es-MX", {"team": "a", "plan": "pro"})


def test_one_recipient_may_be_a_mapping_alone(dispatcher: Dispatcher) -> None:
    receipt = dispatcher.notify("ticket_created", to=ANA, data=TICKET)
    assert receipt.recipients == 1
    assert dispatcher.subscribers.get("ana").email == "ana@example.com"


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        ({**ANA, "email": "not-an-address"}, InvalidAddressError, "to[1].email: "),
        ({**ANA, "timezone": "Mars/Olympus"}, InvalidTimeZoneError, "to[1].timezone: unknown"),
        ({**ANA, "locale": "xx-ZZ"}, InvalidLocaleError, "to[1].locale: invalid locale"),
        ({**ANA, "id": "a\nb"}, InvalidIdentifierError, "to[1].id has U+000A"),
        ({"email": "x@example.com"}, ValidationError, "to[1]: an inline recipient needs an 'id'"),
        ({**ANA, "nick": "a\x00b"}, UnstorableValueError, "to[1].nick: U+0000"),
        ({**ANA, 3: "x"}, ValidationError, "to[1]: keys must be strings"),
    ],
)
def test_a_bad_inline_recipient_is_refused_and_writes_nothing(
    dispatcher: Dispatcher, bad: dict[Any, Any], error: type[Exception], message: str
) -> None:
    dispatcher.subscribers.upsert("u1")
    with pytest.raises(error) as info:
        dispatcher.notify("ticket_created", to=[{"id": "bo"}, bad, "u1"], data=TICKET)
    assert str(info.value).startswith(message)
    assert counts(dispatcher) == (0, 1)


def test_an_unknown_plain_id_rolls_back_the_inline_ones(dispatcher: Dispatcher) -> None:
    with pytest.raises(UnknownSubscriberError, match="'ghost'"):
        dispatcher.notify("ticket_created", to=[ANA, "ghost"], data=TICKET)
    assert counts(dispatcher) == (0, 0)


def test_a_bad_payload_writes_no_inline_recipient(dispatcher: Dispatcher) -> None:
    with pytest.raises(ValidationError):
        dispatcher.notify("ticket_created", to=[ANA], data={**TICKET, "amount": "-1"})
    assert counts(dispatcher) == (0, 0)


def test_inline_recipients_join_the_callers_transaction(dispatcher: Dispatcher) -> None:
    with Session(dispatcher.store.engine) as session:
        dispatcher.notify("ticket_created", to=[ANA], data=TICKET, session=session)
        session.rollback()
    assert counts(dispatcher) == (0, 0)
    with Session(dispatcher.store.engine) as session:
        dispatcher.notify("ticket_created", to=[ANA], data=TICKET, session=session)
        session.commit()
    assert counts(dispatcher) == (1, 1)
