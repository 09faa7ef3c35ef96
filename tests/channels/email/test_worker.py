"""Email through the real Celery worker, on SQLite and PostgreSQL, to a real SMTP server."""

from __future__ import annotations

import time

from sqlalchemy import select

from dispatcher import DeliveryStatus, Dispatcher
from dispatcher.db.models import Delivery
from tests.conftest import StartWorker, runtime, wait_for
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

#: The same for every test here, so the worker is started once per backend.
FAST_RETRIES = {
    "DISPATCHER_SMTP_BACKOFF_BASE_SECONDS": "0.2",
    "DISPATCHER_SMTP_BACKOFF_CAP_SECONDS": "0.4",
    "DISPATCHER_SMTP_MAX_ATTEMPTS": "50",
    "DISPATCHER_SMTP_FROM_ADDRESS": "Avisos <avisos@example.com>",
}


def email_rows(d: Dispatcher) -> list[Delivery]:
    with d.store.session() as s:
        return list(
            s.scalars(select(Delivery).where(Delivery.channel == "email").order_by(Delivery.id))
        )


def all_email_final(d: Dispatcher, expected: int) -> bool:
    rows = email_rows(d)
    return len(rows) == expected and all(r.status.is_final for r in rows)


def test_worker_sends_exactly_one_email_in_the_subscriber_locale(
    dispatcher: Dispatcher, start_worker: StartWorker, smtp_server: SmtpServer
) -> None:
    start_worker(smtp_server.env(**FAST_RETRIES))
    dispatcher.subscribers.upsert("es1", email="es1@example.com", locale="es")
    dispatcher.subscribers.upsert("en1", email="en1@example.com", locale="en")
    data = dict(dispatcher.catalog.get("ticket_created").example)
    dispatcher.notify("ticket_created", to=["es1", "en1"], data=data)

    wait_for(lambda: all_email_final(dispatcher, 2))
    assert {r.status for r in email_rows(dispatcher)} == {DeliveryStatus.SENT}
    time.sleep(0.5)  # anything extra would have arrived by now
    [es] = smtp_server.to("es1@example.com")
    [en] = smtp_server.to("en1@example.com")
    assert es.parse()["Subject"] == "Entrada vendida: Copa del Rey Final"
    assert en.parse()["Subject"] == "Ticket sold: Copa del Rey Final"
    assert es.parse()["From"].addresses[0].addr_spec == "avisos@example.com"
    assert len(smtp_server.messages) == 2


def test_worker_piles_up_while_smtp_is_down_and_sends_each_once_after(
    dispatcher: Dispatcher, start_worker: StartWorker, smtp_server: SmtpServer
) -> None:
    start_worker(smtp_server.env(**FAST_RETRIES))
    people = [f"p{i}" for i in range(12)]
    for p in people:
        dispatcher.subscribers.upsert(p, email=f"{p}@example.com")
    smtp_server.stop()
    data = dict(dispatcher.catalog.get("ticket_created").example)
    dispatcher.notify("ticket_created", to=people, data=data)

    def piled_up() -> bool:
        rows = email_rows(dispatcher)
        # Each row is somewhere in its retry cycle (scheduled, released, being tried).
        return len(rows) == len(people) and all(
            not r.status.is_final and r.attempts >= 2 for r in rows
        )

    def swept(predicate):  # type: ignore[no-untyped-def]
        def check() -> object:
            runtime(dispatcher).sweep()  # what beat does every few seconds
            return predicate()

        return check

    wait_for(swept(piled_up), timeout=30, interval=0.3)
    assert smtp_server.messages == []

    smtp_server.start()
    wait_for(swept(lambda: all_email_final(dispatcher, len(people))), timeout=30, interval=0.3)
    assert {r.status for r in email_rows(dispatcher)} == {DeliveryStatus.SENT}
    for _ in range(3):  # more sweeps ring nothing and send nothing
        time.sleep(0.3)
        runtime(dispatcher).sweep()
    received = sorted(a for m in smtp_server.messages for a in m.rcpt_tos)
    assert received == sorted(f"{p}@example.com" for p in people)
