"""A deferred email leaves at the right UTC instant on both sides of a DST change.

Real SMTP server, the real email channel, the real policy chain and the sweep that beat
runs; the clock is injected so that "now" can sit on the nights the clocks change.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from dispatcher import DeliveryStatus, Dispatcher, Reason
from dispatcher.db.models import Delivery
from dispatcher.settings import SmtpSettings
from tests.conftest import make_settings, runtime
from tests.policies.support import at, release
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

CANCELLED = {
    "ticket_id": 9,
    "event_name": "Final",
    "cancelled_by": "Marta",
    "refund_amount": "45.00",
    "currency": "EUR",
}


@pytest.fixture
def mailer(dispatcher: Dispatcher, smtp_server: SmtpServer) -> Iterator[Dispatcher]:
    d = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            broker_url=dispatcher.settings.broker_url,
            smtp=SmtpSettings(**smtp_server.settings(from_address="Avisos <avisos@example.com>")),
        )
    )
    yield d
    d.close()


def _email(d: Dispatcher) -> Delivery:
    with d.store.session() as s:
        return s.scalars(select(Delivery).where(Delivery.channel == "email")).one()


@pytest.mark.parametrize(
    ("zone", "evening", "release_utc"),
    [
        # Madrid falls back on 25 Oct 2026: 07:00 local is CET, 06:00 UTC.
        (
            "Europe/Madrid",
            datetime(2026, 10, 24, 21, 30, tzinfo=UTC),
            datetime(2026, 10, 25, 6, tzinfo=UTC),
        ),
        # Madrid springs forward on 29 Mar 2026: 07:00 local is CEST, 05:00 UTC.
        (
            "Europe/Madrid",
            datetime(2026, 3, 28, 22, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 5, tzinfo=UTC),
        ),
        # New York falls back on 1 Nov 2026: 07:00 EST is 12:00 UTC.
        (
            "America/New_York",
            datetime(2026, 11, 1, 3, 0, tzinfo=UTC),
            datetime(2026, 11, 1, 12, tzinfo=UTC),
        ),
        # New York springs forward on 8 Mar 2026: 07:00 EDT is 11:00 UTC.
        (
            "America/New_York",
            datetime(2026, 3, 8, 4, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 11, tzinfo=UTC),
        ),
    ],
    ids=[
        "madrid-fall-back",
        "madrid-spring-forward",
        "new-york-fall-back",
        "new-york-spring-forward",
    ],
)
def test_deferred_email_is_released_at_the_end_of_quiet_hours(
    mailer: Dispatcher, smtp_server: SmtpServer, zone: str, evening: datetime, release_utc: datetime
) -> None:
    d = mailer
    d.subscribers.upsert("ana", email="ana@example.com", timezone=zone, locale="es")
    d.quiet_hours.set("ana", [("22:00", "07:00", "0123456")])
    with at(evening):
        receipt = d.notify("ticket_cancelled", to="ana", data=CANCELLED)
        runtime(d).fanout(receipt.id)
        with d.store.session() as s:
            runtime(d).deliver(list(s.scalars(select(Delivery.id))))
    row = _email(d)
    assert (row.status, row.reason) == (DeliveryStatus.SCHEDULED, Reason.QUIET_HOURS)
    assert row.scheduled_for == release_utc
    assert "07:00" in (row.detail or "") and zone in (row.detail or "")
    assert smtp_server.to("ana@example.com") == []

    with at(release_utc - timedelta(seconds=1)):
        release(d)
    assert _email(d).status is DeliveryStatus.SCHEDULED
    assert smtp_server.to("ana@example.com") == []

    with at(release_utc):
        release(d)
    row = _email(d)
    assert row.status is DeliveryStatus.SENT
    assert row.sent_at == release_utc
    [received] = smtp_server.to("ana@example.com")
    assert "Entrada #9 cancelada" in str(received.parse()["Subject"])
