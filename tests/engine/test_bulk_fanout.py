"""A direct event to many goes the campaigns' set-based way (``INSERT … SELECT``, content
rendered once per locale) and ends exactly as the per-recipient fan-out would: the same
rows, the same skip and deferral reasons, nothing new on a second fan-out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from freezegun import freeze_time
from pydantic import BaseModel
from sqlalchemy import select

from dispatcher import Dispatcher, NotificationType
from dispatcher.db.models import Delivery, Event, Notification, Subscriber
from dispatcher.engine.bulk_fanout import BulkFanout
from dispatcher.engine.fanout import fanout
from dispatcher.settings import SmtpSettings
from tests.conftest import Worker, make_settings, runtime, wait_for
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)


class Memo(BaseModel):
    memo: str


MEMO = NotificationType(
    name="bulk_memo",
    payload=Memo,
    example={"memo": "hi"},
    channels=("in_app", "email"),
    category="memos",
)
PEOPLE = 40
THRESHOLD = 10
NIGHT = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)


@pytest.fixture
def mailer(dispatcher: Dispatcher, smtp_server: SmtpServer) -> Iterator[Dispatcher]:
    """``dispatcher`` with email sent to a local SMTP server."""
    smtp = smtp_server.settings(from_address="Dispatcher <noreply@example.com>", pool_size=2)
    d = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            broker_url=dispatcher.settings.broker_url,
            smtp=SmtpSettings(**smtp),
        )
    )
    yield d
    d.close()


def setup_memo(d: Dispatcher) -> list[str]:
    """The memo type with templates that read no recipient, and PEOPLE subscribers: one
    opted out of in-app, one with quiet hours, one without an email address, one
    Spanish."""
    d.catalog.register(MEMO, replace=True)
    d.templates.save("bulk_memo", "in_app", "en", "title", "Memo: {{ memo }}")
    d.templates.save("bulk_memo", "in_app", "en", "body", "Read {{ memo }}")
    d.templates.save("bulk_memo", "in_app", "es", "title", "Nota: {{ memo }}")
    d.templates.save("bulk_memo", "email", "en", "subject", "Memo {{ memo }}")
    d.templates.save("bulk_memo", "email", "en", "text", "Memo {{ memo }}")
    d.templates.save("bulk_memo", "email", "es", "subject", "Nota {{ memo }}")
    d.templates.save("bulk_memo", "email", "es", "text", "Nota {{ memo }}")
    d.templates.save("bulk_memo", "email", "en", "html", "<p>Memo {{ memo }}</p>")
    d.templates.save("bulk_memo", "email", "es", "html", "<p>Nota {{ memo }}</p>")
    ids = [f"m{i:03d}" for i in range(PEOPLE)]
    for i, who in enumerate(ids):
        email = None if i == 3 else f"{who}@example.org"
        d.subscribers.upsert(who, email=email, locale="es" if i == 4 else "en")
    d.preferences.set(ids[1], enabled=False, channel="in_app", type="bulk_memo")
    d.quiet_hours.set(ids[2], [("22:00", "07:00")])
    return ids


def outcome(d: Dispatcher, event_id: int) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Per (recipient, channel): the delivery's status, reason and the inbox content."""
    with d.store.session() as s:
        rows = s.execute(
            select(
                Subscriber.external_id,
                Delivery.channel,
                Delivery.status,
                Delivery.reason,
                Notification.title,
                Notification.body,
            )
            .join(Notification, Notification.id == Delivery.notification_id)
            .join(Subscriber, Subscriber.id == Notification.subscriber_id)
            .where(Notification.event_id == event_id)
        ).all()
    return {(r[0], r[1]): (str(r[2]), r[3], r[4], r[5]) for r in rows}


def fan_out_and_deliver(d: Dispatcher, event_id: int, threshold: int) -> Any:
    rt = runtime(d)
    in_bulk = BulkFanout(rt.bulk_deliverer, threshold)
    result = fanout(d.store, d.catalog, rt.doorbell, event_id, in_bulk=in_bulk)
    with d.store.session() as s:
        pending = list(s.scalars(select(Delivery.id).where(Delivery.status == "pending")))
    if pending:
        rt.deliver(pending)
    return result


def test_a_large_list_ends_as_the_per_recipient_way_would(mailer: Dispatcher) -> None:
    d = mailer
    ids = setup_memo(d)
    with freeze_time(NIGHT):
        bulk = d.notify("bulk_memo", to=ids, data={"memo": "q4"}, actor=ids[5])
        bulk_result = fan_out_and_deliver(d, bulk.id, THRESHOLD)
        one_by_one = d.notify("bulk_memo", to=ids, data={"memo": "q4"}, actor=ids[5])
        ordinary_result = fan_out_and_deliver(d, one_by_one.id, 0)
    # The set-based way: in-app of the regular members recorded sent in the fan-out
    # itself, with the content rendered once per locale.
    with d.store.session() as s:
        in_fanout = s.scalar(
            select(Delivery.id)
            .join(Notification, Notification.id == Delivery.notification_id)
            .where(
                Notification.event_id == bulk.id,
                Delivery.channel == "in_app",
                Delivery.status == "sent",
                Delivery.claimed_by.is_(None),
                Delivery.sent_at == Delivery.created_at,
            )
            .limit(1)
        )
        assert in_fanout is not None
        assert not s.scalar(
            select(Delivery.id)
            .join(Notification, Notification.id == Delivery.notification_id)
            .where(
                Notification.event_id == one_by_one.id,
                Delivery.claimed_by.is_(None),
                Delivery.reason.is_distinct_from("actor"),
            )
            .limit(1)
        )
    assert (
        (bulk_result.notifications, bulk_result.deliveries, bulk_result.missing)
        == (
            ordinary_result.notifications,
            ordinary_result.deliveries,
            ordinary_result.missing,
        )
        == (PEOPLE, 2 * PEOPLE - 2, 0)
    )  # the actor's two deliveries are not counted
    bulk_rows, ordinary_rows = outcome(d, bulk.id), outcome(d, one_by_one.id)
    assert bulk_rows == ordinary_rows
    assert len(bulk_rows) == 2 * PEOPLE
    assert bulk_rows[ids[1], "in_app"][:2] == ("skipped", "opted_out")
    assert bulk_rows[ids[3], "email"][:2] == ("skipped", "no_address")
    assert bulk_rows[ids[5], "in_app"][:2] == ("skipped", "actor")
    assert bulk_rows[ids[4], "in_app"][2] == "Nota: q4"
    assert bulk_rows[ids[0], "in_app"] == ("sent", None, "Memo: q4", "Read q4")
    assert bulk_rows[ids[0], "email"][:2] == ("sent", None)
    # Quiet hours hold email and keep in-app silent, the same on both ways.
    assert bulk_rows[ids[2], "email"] == ordinary_rows[ids[2], "email"]
    assert bulk_rows[ids[2], "email"][0] == "scheduled"


def test_a_second_fan_out_creates_nothing(dispatcher: Dispatcher) -> None:
    d = dispatcher
    ids = setup_memo(d)
    receipt = d.notify("bulk_memo", to=ids, data={"memo": "again"})
    first = fan_out_and_deliver(d, receipt.id, THRESHOLD)
    before = outcome(d, receipt.id)
    again = fan_out_and_deliver(d, receipt.id, THRESHOLD)
    assert (first.notifications, first.done, again.done) == (PEOPLE, True, False)
    # Even an event set back to pending (a racing duplicate) inserts nothing new.
    with d.store.session() as s:
        s.get_one(Event, receipt.id).status = "pending"  # type: ignore[assignment]
    third = fan_out_and_deliver(d, receipt.id, THRESHOLD)
    assert (third.notifications, third.deliveries, third.done) == (0, 0, True)
    assert outcome(d, receipt.id) == before


def set_based(d: Dispatcher, event_id: int) -> int:
    """In-app deliveries of ``event_id`` recorded sent by the fan-out itself (never
    claimed)."""
    with d.store.session() as s:
        return len(
            s.scalars(
                select(Delivery.id)
                .join(Notification, Notification.id == Delivery.notification_id)
                .where(
                    Notification.event_id == event_id,
                    Delivery.channel == "in_app",
                    Delivery.status == "sent",
                    Delivery.claimed_by.is_(None),
                )
            ).all()
        )


def test_a_template_that_reads_the_recipient_is_rendered_for_each_set_based(
    dispatcher: Dispatcher,
) -> None:
    """On PostgreSQL; on SQLite the fan-out holds the writer lock, so such a list goes
    the per-recipient way, with the same result."""
    d = dispatcher
    ids = setup_memo(d)
    d.templates.save("bulk_memo", "in_app", "en", "title", "{{ memo }} for {{ recipient.id }}")
    d.templates.save("bulk_memo", "in_app", "en", "body", "{{ recipient.email.split('@')[0] }}")
    receipt = d.notify("bulk_memo", to=ids, data={"memo": "x"})
    result = fan_out_and_deliver(d, receipt.id, THRESHOLD)
    assert result.notifications == PEOPLE
    rows = outcome(d, receipt.id)
    assert rows[ids[0], "in_app"] == ("sent", None, f"x for {ids[0]}", ids[0])
    # The body of the member without an address fails, and the ordinary way records
    # that on their delivery; the Spanish member's title reads no one (the body falls
    # back to English).
    assert rows[ids[3], "in_app"][:2] == ("failed", "template_error")
    assert rows[ids[4], "in_app"] == ("sent", None, "Nota: x", ids[4])
    # On PostgreSQL all but those with rules of their own and the failed one went
    # set-based.
    expected = PEOPLE - 3 if d.store.is_postgres else 0
    assert set_based(d, receipt.id) == expected


def test_a_template_that_reads_the_notification_goes_the_per_recipient_way(
    dispatcher: Dispatcher,
) -> None:
    d = dispatcher
    ids = setup_memo(d)
    d.templates.save("bulk_memo", "in_app", "en", "title", "{{ memo }} #{{ notification.id }}")
    receipt = d.notify("bulk_memo", to=ids, data={"memo": "x"})
    result = fan_out_and_deliver(d, receipt.id, THRESHOLD)
    assert result.notifications == PEOPLE
    rows = outcome(d, receipt.id)
    assert rows[ids[0], "in_app"][:3] == ("sent", None, f"x #{rows_id(d, receipt.id, ids[0])}")
    assert set_based(d, receipt.id) == 0


def rows_id(d: Dispatcher, event_id: int, who: str) -> int:
    with d.store.session() as s:
        return int(
            s.scalar(
                select(Notification.id)
                .join(Subscriber, Subscriber.id == Notification.subscriber_id)
                .where(Notification.event_id == event_id, Subscriber.external_id == who)
            )
            or 0
        )


def test_a_worker_fans_a_large_list_out_set_based(dispatcher: Dispatcher, worker: Worker) -> None:
    """Through a real worker (default threshold 200): payout_sent is in-app only."""
    d = dispatcher
    ids = [f"w{i:04d}" for i in range(250)]
    for who in ids:
        d.subscribers.upsert(who)
    d.preferences.set(ids[7], enabled=False, channel="in_app", type="payout_sent")
    receipt = d.notify("payout_sent", to=ids, data={"payout_id": 3, "amount": "1.00"})

    def final() -> dict[tuple[str, str], tuple[Any, ...]] | None:
        rows = outcome(d, receipt.id)
        done = len(rows) == 250 and all(v[0] in ("sent", "skipped") for v in rows.values())
        return rows if done else None

    rows = wait_for(final)
    assert rows[ids[7], "in_app"][:2] == ("skipped", "opted_out")
    assert sum(v[0] == "sent" for v in rows.values()) == 249
    with d.store.session() as s:
        set_based = s.scalar(
            select(Delivery.id).where(Delivery.claimed_by.is_(None), Delivery.status == "sent")
        )
    assert set_based is not None
    assert [i.title for i in d.inbox(ids[0])] == ["Payout 3 sent"]
