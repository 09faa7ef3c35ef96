"""Item 3: NUL bytes and PostgreSQL.

PostgreSQL cannot store a NUL (U+0000) in a text column; SQLite can. Every entry point
must refuse it with a precise ``dispatcher`` error on both stores and write nothing; an
event stored before the door refused it must end ``failed`` with a reason instead of
looping; and no log line may carry the event's text or the SQL parameters.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from dispatcher import (
    Dispatcher,
    EventStatus,
    InvalidIdentifierError,
    NotificationType,
    PayloadValidationError,
    Priority,
    Reason,
    TemplateError,
    UnstorableValueError,
    ValidationError,
)
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Event, Notification, Subscriber, TemplateVersion
from dispatcher.engine.failed_events import MAX_FANOUT_ATTEMPTS, record_failure
from tests.app_types import PayoutSent
from tests.conftest import QUIET_BROKER_URL, Worker, make_settings, runtime, wait_for

#: Text that must never show up in a log line or an error message.
SECRET = "Zanzibar-7781"
ALERT = {
    "alert_id": "payments-down",
    "severity": "critical",
    "title": "Payments are failing",
    "message": "The provider rejects all cards.",
}
PAYOUT = {"payout_id": 1, "amount": "10.00"}


def count(d: Dispatcher, model: type) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def event_row(d: Dispatcher, event_id: int) -> Any:
    with d.store.session() as s:
        return s.execute(
            select(Event.status, Event.reason, Event.detail, Event.fanout_attempts).where(
                Event.id == event_id
            )
        ).one()


def store_legacy_event(d: Dispatcher, type: str, payload: dict[str, Any], to: list[str]) -> int:
    """An event as ``notify`` stored it before it refused NUL (both stores accept a NUL
    inside a JSON document: PostgreSQL's ``json`` keeps it as the escape ``\\u0000``)."""
    priority = d.catalog.get(type).priority if type in d.catalog else Priority.MEDIUM
    row = {
        "type": type,
        "payload": payload,
        "recipients": to,
        "priority": priority,
        "send_at": utcnow(),
        "created_at": utcnow(),
    }
    with d.store.session(write=True) as s:
        return int(s.execute(insert(Event).returning(Event.id), row).scalar_one())


def dispatcher_log(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("dispatcher"))


# -- refused at the door, identically on both stores ------------------------------------


def test_a_nul_in_a_subscriber_id_is_refused(dispatcher: Dispatcher) -> None:
    with pytest.raises(InvalidIdentifierError, match=r"U\+0000 \(NUL\) at position 13") as info:
        dispatcher.subscribers.upsert(f"{SECRET}\x00")
    assert SECRET not in str(info.value)
    assert count(dispatcher, Subscriber) == 0


def test_a_nul_in_an_idempotency_key_is_refused(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("ana")
    with pytest.raises(InvalidIdentifierError, match=r"idempotency_key has U\+0000") as info:
        dispatcher.notify("payout_sent", to="ana", data=PAYOUT, idempotency_key=f"k\x00{SECRET}")
    assert SECRET not in str(info.value)
    assert count(dispatcher, Event) == 0


def test_a_nul_in_a_to_id_is_refused(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("ana")
    with pytest.raises(InvalidIdentifierError, match=r"to\[1\] has U\+0000 \(NUL\) at position 3"):
        dispatcher.notify("payout_sent", to=["ana", "ana\x00"], data=PAYOUT)
    assert count(dispatcher, Event) == 0


def test_a_nul_in_a_template_source_is_refused(dispatcher: Dispatcher) -> None:
    with pytest.raises(
        UnstorableValueError, match=r"template source: U\+0000 \(NUL\) at position 11"
    ):
        dispatcher.templates.save("system_alert", "in_app", "en", "title", "{{ title }}\x00")
    assert count(dispatcher, TemplateVersion) == 0


def test_a_template_that_renders_a_nul_is_refused(dispatcher: Dispatcher) -> None:
    # No NUL in the source, but a string escape renders one: PostgreSQL would refuse
    # the rendered title on every delivery.
    with pytest.raises(TemplateError, match="unstorable output") as info:
        dispatcher.templates.save(
            "system_alert", "in_app", "en", "title", '{{ title }}{{ "\\x00" }}'
        )
    assert info.value.reason == "unstorable output: U+0000 (NUL) at position 20"
    assert count(dispatcher, TemplateVersion) == 0


def test_a_nul_in_a_payload_title_is_refused(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("ana")
    with pytest.raises(PayloadValidationError) as info:
        dispatcher.notify("system_alert", to="ana", data={**ALERT, "title": f"{SECRET}\x00"})
    assert info.value.errors == ("title: U+0000 (NUL) at position 13 cannot be stored",)
    assert SECRET not in str(info.value)
    assert count(dispatcher, Event) == 0


def test_a_nul_deep_in_a_payload_is_refused_with_its_path(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("ana")
    data = {
        "ticket_id": 1,
        "event_name": "Final",
        "updated_by": "Luis",
        "changes": [{"field": "seat", "old": "1A", "new": "2B"}, {"field": "row", "new": "\x00"}],
    }
    with pytest.raises(PayloadValidationError) as info:
        dispatcher.notify("ticket_updated", to="ana", data=data)
    assert info.value.errors == ("changes[1].new: U+0000 (NUL) at position 0 cannot be stored",)
    assert count(dispatcher, Event) == 0


def test_a_nul_in_a_subscriber_attribute_is_refused(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("ana", plan="pro")
    with pytest.raises(UnstorableValueError, match=r"attributes\.nick: U\+0000") as info:
        dispatcher.subscribers.upsert("ana", nick=f"{SECRET}\x00", plan="free")
    assert SECRET not in str(info.value)
    assert dispatcher.subscribers.get("ana").attributes == {"plan": "pro"}  # nothing merged


@pytest.mark.parametrize(
    "lookup",
    [
        lambda d: d.subscribers.get("ana\x00"),
        lambda d: d.subscribers.delete("ana\x00"),
        lambda d: d.inbox("ana\x00"),
        lambda d: d.inbox("ana", category="x\x00"),
        lambda d: d.explain("key:k\x00"),
        lambda d: d.templates.history("system_alert", "in_app", "e\x00", "title"),
        lambda d: d.preferences.rules("ana\x00"),
        lambda d: d.push_subscriptions.list("ana\x00"),
    ],
    ids=["get", "delete", "inbox", "inbox-category", "explain", "history", "rules", "push"],
)
def test_lookups_with_a_nul_are_a_validation_error(dispatcher: Dispatcher, lookup: Any) -> None:
    dispatcher.subscribers.upsert("ana")
    with pytest.raises(ValidationError, match=r"U\+0000"):
        lookup(dispatcher)


# -- an event that can never fan out ends failed ----------------------------------------


def test_a_stored_event_with_a_nul_ends_failed_and_the_others_go_on(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher.subscribers.upsert("ana")
    legacy = store_legacy_event(
        dispatcher, "system_alert", {**ALERT, "title": f"{SECRET}\x00"}, ["ana"]
    )
    good = dispatcher.notify("system_alert", to="ana", data=ALERT)

    with caplog.at_level(logging.DEBUG, logger="dispatcher"):
        result = runtime(dispatcher).drain("urgent", first=legacy)

    assert (result.events, result.failed) == (1, 1)
    status, reason, detail, _ = event_row(dispatcher, legacy)
    assert (status, reason) == (EventStatus.FAILED, Reason.INVALID_DATA)
    assert detail == "payload.title: U+0000 (NUL) at position 13 cannot be stored"
    assert event_row(dispatcher, good.id).status == EventStatus.FANNED_OUT
    with dispatcher.store.session() as s:
        assert set(s.scalars(select(Notification.event_id))) == {good.id}
    assert f"fanout.failed event_id={legacy} reason=invalid_data" in dispatcher_log(caplog)
    assert SECRET not in dispatcher_log(caplog)
    # Nothing rings it again: the sweep looks for pending events only.
    assert runtime(dispatcher).sweep().events == 0
    explained = "\n".join(dispatcher.explain(legacy).lines())
    assert "failed" in explained
    assert "fan-out failed: invalid_data (payload.title: U+0000 (NUL)" in explained


def test_a_stored_event_with_a_nul_ends_failed_in_a_worker(
    dispatcher: Dispatcher, worker: Worker
) -> None:
    dispatcher.subscribers.upsert("ana")
    legacy = store_legacy_event(
        dispatcher, "system_alert", {**ALERT, "message": f"{SECRET}\x00"}, ["ana"]
    )
    dispatcher._doorbell.fanout(legacy, Priority.URGENT)
    good = dispatcher.notify("system_alert", to="ana", data=ALERT)

    wait_for(lambda: event_row(dispatcher, legacy).status == EventStatus.FAILED)
    wait_for(lambda: dispatcher.inbox("ana"))
    assert event_row(dispatcher, legacy).reason == Reason.INVALID_DATA
    assert [item.title for item in dispatcher.inbox("ana")] == ["[CRITICAL] Payments are failing"]
    with dispatcher.store.session() as s:
        assert set(s.scalars(select(Notification.event_id))) == {good.id}
    assert f"fanout.failed event_id={legacy} reason=invalid_data" in worker.log()
    assert SECRET not in worker.log()


def test_an_event_of_a_type_no_worker_knows_fails_after_a_bounded_number_of_drains(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    app = Dispatcher(make_settings(dispatcher.settings.database_url, broker_url=QUIET_BROKER_URL))
    app.register(NotificationType(name="payout_reversed", payload=PayoutSent, example=PAYOUT))
    try:
        app.subscribers.upsert("ana")
        unknown = app.notify("payout_reversed", to="ana", data=PAYOUT).id
    finally:
        app.close()

    for attempt in range(1, MAX_FANOUT_ATTEMPTS):
        assert runtime(dispatcher).drain("medium", first=unknown).failed == 0
        assert tuple(event_row(dispatcher, unknown))[::3] == (EventStatus.PENDING, attempt)
    with caplog.at_level(logging.ERROR, logger="dispatcher"):
        assert runtime(dispatcher).drain("medium", first=unknown).failed == 1

    status, reason, detail, attempts = event_row(dispatcher, unknown)
    assert (status, reason, attempts) == (EventStatus.FAILED, Reason.UNKNOWN_TYPE, 5)
    assert detail == "UnknownEventTypeError: 'payout_reversed'; 5 attempts"
    assert "gave_up=True" in dispatcher_log(caplog)
    assert runtime(dispatcher).drain("medium", first=unknown).failed == 0  # left alone since


# SQLite does not enforce VARCHAR lengths: on it, there is nothing to refuse.
@pytest.mark.parametrize("backend", ["postgres"])
def test_an_event_the_database_refuses_ends_failed_at_once(
    dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture
) -> None:
    # A worker whose type has a category wider than the column: PostgreSQL raises a
    # DataError on every try, and its message would quote the row.
    dispatcher.register(
        NotificationType(name="payout_wide", payload=PayoutSent, example=PAYOUT, category="c" * 65)
    )
    dispatcher.subscribers.upsert("ana")
    wide = store_legacy_event(dispatcher, "payout_wide", {**PAYOUT, "amount": SECRET}, ["ana"])

    with caplog.at_level(logging.DEBUG):
        result = runtime(dispatcher).drain("medium", first=wide)

    assert result.failed == 1
    status, reason, detail, attempts = event_row(dispatcher, wide)
    assert (status, reason, attempts) == (EventStatus.FAILED, Reason.INVALID_DATA, 1)
    assert detail == "DataError (psycopg.errors.StringDataRightTruncation)"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "fanout.failed" in logged
    assert SECRET not in logged
    assert "ccccc" not in logged


def test_a_lost_database_counts_against_no_event(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("ana")
    event = dispatcher.notify("payout_sent", to="ana", data=PAYOUT).id
    gone = Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    try:
        with pytest.raises(OperationalError) as info, gone.session() as s:
            s.execute(select(Event.id))
    finally:
        gone.dispose()

    with pytest.raises(OperationalError):
        record_failure(dispatcher.store, event, info.value)
    assert tuple(event_row(dispatcher, event))[::3] == (EventStatus.PENDING, 0)


def test_driver_errors_do_not_carry_the_parameters(dispatcher: Dispatcher, backend: str) -> None:
    dispatcher.subscribers.upsert(SECRET)
    row = {"external_id": SECRET, "timezone": "Europe/Madrid", "attributes": {}}
    with pytest.raises(IntegrityError) as info, dispatcher.store.session(write=True) as s:
        conn: Connection = s.connection()
        conn.execute(insert(Subscriber), row)
    text = str(info.value)
    assert "[SQL parameters hidden due to hide_parameters=True]" in text
    assert "Europe/Madrid" not in text
    if backend == "sqlite":
        assert SECRET not in text
    # PostgreSQL's own DETAIL may still quote a key ("Key (external_id)=(...) already
    # exists"): that is why failure logs carry error classes, never messages.
