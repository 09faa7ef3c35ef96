"""Templates through the real Celery worker: overrides and template errors."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from dispatcher import DeliveryStatus, Dispatcher, Reason
from dispatcher.db.models import Delivery, DeliveryStep
from dispatcher.engine.compose import Row
from dispatcher.enums import Priority
from dispatcher.policies.base import Candidate
from dispatcher.subscribers.recipient import Recipient
from dispatcher.templating.checks import sample_context
from tests.conftest import ROOT, StartWorker, runtime, wait_for

HERE = Path(__file__).resolve().parent
#: A folder whose payout_sent title uses a variable the payload does not have, searched
#: before the test templates; and a short refresh so the test need not wait 2 s.
WORKER_ENV = {
    "DISPATCHER_EXTRA_TEMPLATES_DIRS": json.dumps(
        [str(HERE / "fixtures" / "broken"), str(ROOT / "tests" / "templates")]
    ),
    "DISPATCHER_TEMPLATE_REFRESH_SECONDS": "0.5",
}


def _final(d: Dispatcher, channel: str) -> Delivery | None:
    with d.store.session() as s:
        row = s.scalar(select(Delivery).where(Delivery.channel == channel))
        return row if row is not None and row.status.is_final else None


def test_a_missing_variable_fails_the_delivery_permanently_naming_it(
    dispatcher: Dispatcher, start_worker: StartWorker
) -> None:
    start_worker(WORKER_ENV)
    dispatcher.subscribers.upsert("u1")
    dispatcher.notify("payout_sent", to="u1", data={"payout_id": 9, "amount": "12.50"})
    row = wait_for(lambda: _final(dispatcher, "in_app"))
    assert row.status is DeliveryStatus.FAILED
    assert row.reason == Reason.TEMPLATE_ERROR == "template_error"
    assert row.detail == "missing variable 'seller'"
    assert row.attempts == 1  # permanent: no retry scheduled
    assert dispatcher.inbox("u1") == []
    with dispatcher.store.session() as s:
        steps = s.scalars(select(DeliveryStep).where(DeliveryStep.delivery_id == row.id)).all()
    assert [(st.status, st.reason, st.detail) for st in steps] == [
        (DeliveryStatus.FAILED, "template_error", "missing variable 'seller'")
    ]


def test_the_worker_uses_an_override_saved_by_another_process(
    dispatcher: Dispatcher, start_worker: StartWorker
) -> None:
    start_worker(WORKER_ENV)
    dispatcher.subscribers.upsert("ana", locale="es-MX", timezone="America/Mexico_City")
    dispatcher.templates.save(
        "ticket_created",
        "in_app",
        "es",
        "body",
        "{{ seller }} vendió por {{ amount|money(currency) }}; evento: "
        "{{ event_date|datetime('d MMM, HH:mm') }}",
        created_by="ops",
    )
    time.sleep(1.0)  # longer than the worker's refresh interval (0.5 s)
    example = dispatcher.catalog.get("ticket_created").example
    dispatcher.notify("ticket_created", to="ana", data=example)
    item = wait_for(lambda: dispatcher.inbox("ana"))[0]
    # es-MX falls back to the es override; the date is in Mexico City's time (UTC-6).
    assert item.body == "Luis vendió por EUR45.00; evento: 25 abr, 12:00"
    assert item.title == "Entrada vendida: Copa del Rey Final"  # the file, not overridden


def test_sample_context_offers_what_the_delivery_pipeline_offers(dispatcher: Dispatcher) -> None:
    t = dispatcher.catalog.get("ticket_created")
    channel = dispatcher.channels.get("in_app")
    assert channel is not None
    recipient = Recipient(1, "u1", "es", "Europe/Madrid")
    candidate = Candidate(1, 1, "in_app", t, Priority.HIGH, recipient, 1)
    row = Row(candidate, 1, t.validate(t.example), datetime.now(UTC))
    real = runtime(dispatcher).deliverer.composer.context(row, channel)
    sample = sample_context(t, channel, "es")
    assert sample.keys() == real.keys()
    assert sample["recipient"].keys() == real["recipient"].keys()
    assert sample["notification"].keys() == real["notification"].keys()
    assert sample["data"] == real["data"]
