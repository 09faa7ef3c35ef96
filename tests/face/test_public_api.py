"""Every bad argument to a public call is a ``dispatcher`` error naming the field.

A property test over the face (:class:`Dispatcher`'s methods and its namespaces): each
call starts from a valid one, then one argument is replaced by arbitrary junk (a list
for a mapping, bytes for an id, a huge number, a surrogate...). Whatever happens, the
call either works or raises :class:`DispatcherError`; never a bare ``TypeError``,
``KeyError``, ``AttributeError`` or a driver's error. A wrong *shape* names the
parameter (``InvalidArgumentError.field``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from dispatcher import Dispatcher, DispatcherError, PayloadValidationError
from dispatcher.db.models import Event
from dispatcher.errors import InvalidArgumentError

TICKET = {
    "ticket_id": 1,
    "event_name": "Final",
    "seller": "Luis",
    "amount": "45.00",
    "currency": "EUR",
}
ENDPOINT = "https://push.example.com/send/abc"

#: Values of every shape a confused caller might pass.
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.text(alphabet=st.sampled_from(["\x00", "\ud800", "\n", "a", " "]), max_size=4),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=3),
    st.lists(st.text(max_size=3), max_size=3),
    st.tuples(st.integers(), st.text(max_size=3)),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    st.sets(st.integers(), max_size=3),
    st.datetimes(),
    st.just(object()),
)


def calls(d: Dispatcher) -> dict[str, tuple[Callable[..., Any], dict[str, Any]]]:
    """Public call → (function, valid keyword arguments)."""
    return {
        "notify": (
            d.notify,
            {"type": "ticket_created", "to": "u1", "data": TICKET, "priority": "high"},
        ),
        "inbox": (d.inbox, {"subscriber_id": "u1", "limit": 5, "before_id": 10}),
        "cancel": (d.cancel, {"event_id": 1}),
        "reschedule": (
            d.reschedule,
            {"event_id": 1, "send_at": datetime(2030, 1, 1, tzinfo=UTC)},
        ),
        "explain": (d.explain, {"ref": 1}),
        "unsubscribe": (d.unsubscribe, {"token": "x.y"}),
        "subscribers.upsert": (
            d.subscribers.upsert,
            {"id": "u2", "email": "a@example.com", "timezone": "UTC", "locale": "es"},
        ),
        "subscribers.get": (d.subscribers.get, {"id": "u1"}),
        "subscribers.delete": (d.subscribers.delete, {"id": "nobody"}),
        "subscribers.list": (d.subscribers.list, {"limit": 5, "after": "a"}),
        "inboxes.get": (d.inboxes.get, {"subscriber_id": "u1", "notification_id": 1}),
        "inboxes.mark_read": (d.inboxes.mark_read, {"subscriber_id": "u1", "notification_id": 1}),
        "inboxes.archive": (d.inboxes.archive, {"subscriber_id": "u1", "notification_id": 1}),
        "inboxes.unread_count": (d.inboxes.unread_count, {"subscriber_id": "u1"}),
        "inboxes.mark_all_read": (d.inboxes.mark_all_read, {"subscriber_id": "u1"}),
        "preferences.set": (
            d.preferences.set,
            {"subscriber_id": "u1", "enabled": False, "channel": "email", "type": "ticket_created"},
        ),
        "preferences.clear": (
            d.preferences.clear,
            {"subscriber_id": "u1", "channel": "email", "category": "sales"},
        ),
        "preferences.rules": (d.preferences.rules, {"subscriber_id": "u1"}),
        "quiet_hours.set": (
            d.quiet_hours.set,
            {"subscriber_id": "u1", "windows": [("22:00", "07:00", "weekdays")]},
        ),
        "quiet_hours.list": (d.quiet_hours.list, {"subscriber_id": "u1"}),
        "quiet_hours.clear": (d.quiet_hours.clear, {"subscriber_id": "u1"}),
        "push_subscriptions.add": (
            d.push_subscriptions.add,
            {
                "subscriber_id": "u1",
                "subscription": {"endpoint": ENDPOINT, "keys": {"p256dh": "x", "auth": "y"}},
            },
        ),
        "push_subscriptions.remove": (
            d.push_subscriptions.remove,
            {"subscriber_id": "u1", "endpoint": ENDPOINT},
        ),
        "templates.save": (
            d.templates.save,
            {
                "type": "ticket_created",
                "channel": "in_app",
                "locale": "es",
                "part": "title",
                "source": "Hola",
            },
        ),
        "templates.history": (
            d.templates.history,
            {"type": "ticket_created", "channel": "in_app", "locale": "es", "part": "title"},
        ),
        "templates.preview": (
            d.templates.preview,
            {"type": "ticket_created", "channel": "in_app", "locale": "es", "data": TICKET},
        ),
        "deliveries.list": (
            d.deliveries.list,
            {"status": "sent", "channel": "email", "subscriber_id": "u1", "limit": 5},
        ),
        "deliveries.retry": (d.deliveries.retry, {"ids": [1, 2]}),
    }


def _fields() -> list[tuple[str, str]]:
    """(call, argument) pairs, read from a dispatcher that is never opened."""
    valid = calls(_Shape())  # type: ignore[arg-type]
    return [(call, field) for call, (_, kwargs) in valid.items() for field in kwargs]


class _Shape:
    """Stands in for a Dispatcher when only the argument names are needed."""

    def __getattr__(self, name: str) -> Any:
        return self


CASES = _fields()


def _run(fn: Callable[..., Any], kwargs: dict[str, Any]) -> BaseException | None:
    try:
        fn(**kwargs)
    except DispatcherError as exc:
        return exc
    return None


@pytest.mark.parametrize(("call", "field"), CASES, ids=[f"{c}-{f}" for c, f in CASES])
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(junk=JUNK)
def test_junk_in_one_argument_is_a_dispatcher_error(
    dispatcher: Dispatcher, call: str, field: str, junk: Any
) -> None:
    dispatcher.subscribers.upsert("u1", email="u1@example.com")
    fn, kwargs = calls(dispatcher)[call]
    error = _run(fn, {**kwargs, field: junk})  # anything else escapes and fails the test
    if isinstance(error, InvalidArgumentError):
        assert error.field == field
        assert str(error).startswith(f"{field} must be ")


#: Calls that take ``**attributes``: any keyword is an attribute there.
OPEN_KEYWORDS = {"subscribers.upsert"}


@pytest.mark.parametrize("call", sorted({c for c, _ in CASES} - OPEN_KEYWORDS))
def test_an_unknown_keyword_names_it(dispatcher: Dispatcher, call: str) -> None:
    fn, kwargs = calls(dispatcher)[call]
    with pytest.raises(DispatcherError) as info:
        fn(**kwargs, colour="red")
    assert "colour" in str(info.value)


def test_a_list_payload_is_a_payload_error_and_writes_nothing(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1")
    with pytest.raises(PayloadValidationError) as info:
        dispatcher.notify("ticket_created", to="u1", data=[1, 2])  # type: ignore[arg-type]
    assert str(info.value) == (
        "invalid payload for 'ticket_created': <root>: must be an object of field names "
        "to values, not list"
    )
    with dispatcher.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def test_a_naive_send_at_names_the_field(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1")
    with pytest.raises(DispatcherError, match="send_at"):
        dispatcher.notify("ticket_created", to="u1", data=TICKET, send_at=datetime(2030, 1, 1))
    with pytest.raises(DispatcherError, match="send_at"):
        dispatcher.notify("ticket_created", to="u1", data=TICKET, send_at="tomorrow")  # type: ignore[arg-type]
