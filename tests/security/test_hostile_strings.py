"""Hostile strings through every public entry point that stores text, on both stores.

Control characters, encoded words, bidi and line-separator characters, NUL, lone
surrogates, huge numbers and long strings go into ``notify`` payloads, ``to=`` ids and
idempotency keys, subscriber fields and template saves. Each call must either raise a
``dispatcher`` error and write nothing, or store a row that reads back as it went in
(and, for events, fan out and deliver without a driver error). A SQLAlchemy or driver
exception, a half-written row or an event left pending fails the test.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from dispatcher import Dispatcher, DispatcherError, EventStatus
from dispatcher.db.models import Delivery, Event, Notification, Subscriber, TemplateVersion
from tests.conftest import _truncate, runtime

PIECES = [
    "\x00",
    "\r\n",
    "\n",
    "\r",
    "\t",
    "\x0b",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u2066",
    "\u2069",
    "\u200b",
    "\ufeff",
    "\u00a0",
    "\ud800",
    "\udfff",
    "=?utf-8?q?a=0D=0AX-Injected:_1?=",
    "=?utf-8?b?AA==?=",
    "{{ 7 * 7 }}",
    "{% raw %}",
    "<script>alert(1)</script>",
    "'; DROP TABLE events; --",
    "%s%n",
    "\\u0000",
    "é",
    "e\u0301",
    "🎉",
    "用户",
    " ",
]
#: Hostile text: pieces above glued to arbitrary text, plus long runs.
HOSTILE = st.one_of(
    st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=8)), min_size=1, max_size=8).map(
        "".join
    ),
    st.text(min_size=1, max_size=40),
    st.builds(
        lambda piece, n: piece * n,
        st.sampled_from(["a", "é", "\u2028", "x\x00"]),
        st.integers(100, 5000),
    ),
)
NUMBERS = st.one_of(
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**100, 10**5000]),
)
FAST = settings(
    max_examples=50,
    deadline=None,
    database=None,  # nothing written into the worktree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TABLES = (Subscriber, Event, Notification, Delivery, TemplateVersion)


def fresh(d: Dispatcher) -> None:
    """Empty tables: each example starts from nothing (the fixture runs once per test)."""
    _truncate(d)


def counts(d: Dispatcher) -> dict[str, int]:
    with d.store.session() as s:
        return {
            m.__tablename__: int(s.scalar(select(func.count()).select_from(m)) or 0) for m in TABLES
        }


def portable(value: Any) -> bool:
    """Whether both stores keep ``value`` as it is: no NUL and no lone surrogate in any
    string. Written apart from ``dispatcher.validation``, so that it checks it."""
    if isinstance(value, str):
        return not any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return all(portable(k) and portable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(portable(v) for v in value)
    return True


def a_clean_id(value: str) -> bool:
    """The documented id character set, written apart from ``dispatcher.validation``."""
    return (
        0 < len(value) <= 255
        and value == value.strip(" ")
        and all(c == " " or unicodedata.category(c)[0] in "LMNPS" for c in value)
    )


@contextmanager
def refused_or_stored(d: Dispatcher) -> Iterator[list[bool]]:
    """Run a call that must either raise a ``dispatcher`` error (then no table changed)
    or succeed; the list says which (``[True]`` if it was stored)."""
    before = counts(d)
    outcome: list[bool] = []
    try:
        yield outcome
    except DispatcherError:
        assert counts(d) == before, "a refused call left rows behind"
        outcome.append(False)
        return
    outcome.append(True)


@FAST
@given(title=HOSTILE, message=HOSTILE, alert_id=HOSTILE)
def test_notify_payload_strings(
    dispatcher: Dispatcher, title: str, message: str, alert_id: str
) -> None:
    fresh(dispatcher)
    dispatcher.subscribers.upsert("ana")
    data = {"alert_id": alert_id, "severity": "critical", "title": title, "message": message}
    with refused_or_stored(dispatcher) as stored:
        receipt = dispatcher.notify("system_alert", to="ana", data=data)
    if not stored[0]:
        return
    with dispatcher.store.session() as s:
        payload = s.scalar(select(Event.payload).where(Event.id == receipt.id))
    # Read back as the type's model normalised it (the seed types strip whitespace),
    # and only what PostgreSQL could store too was accepted.
    assert payload == dispatcher.catalog.get("system_alert").validate(data)
    assert portable(payload)
    # Fan-out and delivery cope with it: the event does not stay pending, no delivery
    # is left claimed, and nothing raises a driver error.
    runtime(dispatcher).drain("urgent")
    with dispatcher.store.session() as s:
        status = s.scalar(select(Event.status).where(Event.id == receipt.id))
        ids = list(s.scalars(select(Delivery.id).where(Delivery.status == "pending")))
    assert status == EventStatus.FANNED_OUT
    runtime(dispatcher).deliver(ids)
    with dispatcher.store.session() as s:
        left = s.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.status.in_(["pending", "sending"]))
        )
    assert left == 0


@FAST
@given(payout_id=NUMBERS, amount=HOSTILE)
def test_notify_payload_numbers(dispatcher: Dispatcher, payout_id: int, amount: str) -> None:
    fresh(dispatcher)
    dispatcher.subscribers.upsert("ana")
    data = {"payout_id": payout_id, "amount": amount}
    with refused_or_stored(dispatcher) as stored:
        receipt = dispatcher.notify("payout_sent", to="ana", data=data)
    if stored[0]:
        with dispatcher.store.session() as s:
            assert s.scalar(select(Event.payload).where(Event.id == receipt.id)) == data
        assert -(2**63) <= payout_id < 2**63


@FAST
@given(recipient=HOSTILE, key=HOSTILE)
def test_notify_ids_and_keys(dispatcher: Dispatcher, recipient: str, key: str) -> None:
    fresh(dispatcher)
    with refused_or_stored(dispatcher) as stored:
        dispatcher.subscribers.upsert(recipient)
    assert stored[0] == a_clean_id(recipient)
    if not stored[0]:
        return
    with refused_or_stored(dispatcher) as stored:
        receipt = dispatcher.notify(
            "payout_sent", to=recipient, data={"payout_id": 1, "amount": "1"}, idempotency_key=key
        )
    assert stored[0] == a_clean_id(key)
    if stored[0]:
        assert dispatcher.explain(f"key:{key}").event_id == receipt.id


@FAST
@given(
    id=HOSTILE,
    email=HOSTILE,
    timezone=HOSTILE,
    locale=HOSTILE,
    # Not a keyword ``upsert`` itself takes.
    key=HOSTILE.filter(lambda k: k not in {"id", "email", "timezone", "locale", "session"}),
    value=st.one_of(HOSTILE, NUMBERS, st.floats(), st.lists(HOSTILE, max_size=3)),
)
def test_subscriber_fields(
    dispatcher: Dispatcher, id: str, email: str, timezone: str, locale: str, key: str, value: Any
) -> None:
    fresh(dispatcher)
    dispatcher.subscribers.upsert("ana", plan="pro")
    for fields in ({"email": email}, {"timezone": timezone}, {"locale": locale}, {key: value}):
        with refused_or_stored(dispatcher) as stored:
            info = dispatcher.subscribers.upsert("ana", **fields)
        if stored[0]:
            again = dispatcher.subscribers.get("ana")
            assert again == info
            assert portable(again.attributes)
            if key in fields:
                assert again.attributes[key] == value
                dispatcher.subscribers.upsert("ana", **{key: "pro" if key == "plan" else None})
        else:
            assert dispatcher.subscribers.get("ana").attributes.get("plan") == "pro"
    with refused_or_stored(dispatcher) as stored:
        dispatcher.subscribers.upsert(id, locale="es")
    assert stored[0] == a_clean_id(id)
    if stored[0]:
        assert dispatcher.subscribers.get(id).id == id
    # Lookups with hostile ids: a precise error or nothing found, never a driver error.
    for lookup in (dispatcher.subscribers.get, dispatcher.inbox, dispatcher.preferences.rules):
        with suppress(DispatcherError):
            lookup(id)


@FAST
@given(text=HOSTILE, locale=HOSTILE, created_by=HOSTILE)
def test_template_saves(dispatcher: Dispatcher, text: str, locale: str, created_by: str) -> None:
    fresh(dispatcher)
    for source, where, author in (
        ("{{ title }} " + text, "en", None),
        ("{{ title }}", locale, None),
        ("{{ title }}", "en", created_by),
    ):
        with refused_or_stored(dispatcher) as stored:
            saved = dispatcher.templates.save(
                "system_alert", "in_app", where, "title", source, created_by=author
            )
        if stored[0]:
            assert portable(source) and portable(author) and len(saved.locale) <= 35
            history = dispatcher.templates.history("system_alert", "in_app", saved.locale, "title")
            assert history[0].source == source
            assert history[0].created_by == author
    with suppress(DispatcherError):
        dispatcher.templates.history("system_alert", "in_app", locale, "title")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_in_attributes_are_refused(dispatcher: Dispatcher, value: float) -> None:
    # PostgreSQL's json refuses NaN and Infinity, SQLite keeps them: both must refuse.
    with refused_or_stored(dispatcher) as stored:
        dispatcher.subscribers.upsert("ana", score=value)
    assert stored == [False]
