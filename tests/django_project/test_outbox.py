"""``notify`` in Django's transaction, without a worker: the shared database writes in
the transaction; separate databases defer to ``on_commit``; users follow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from sqlalchemy import func, select

from dispatcher import Dispatcher, NotFoundError, PayloadValidationError
from dispatcher.contrib.django import get_dispatcher, notify, reset_dispatcher
from dispatcher.db.models import Event
from tests.conftest import QUIET_BROKER_URL, make_settings

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "postgres"])

DATA = {"ticket_id": 1, "event_name": "Final", "seller": "Luis", "amount": "45.00",
        "currency": "EUR"}  # fmt: skip


class Boom(Exception):
    pass


def events(d: Dispatcher) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Event)) or 0)


def test_a_user_created_and_notified_in_one_transaction(project: Dispatcher, alias: str) -> None:
    with transaction.atomic(using=alias):
        bea = get_user_model().objects.db_manager(alias).create_user("bea", email="b@example.com")
        receipt = notify("ticket_created", to=str(bea.pk), data=DATA, using=alias)
        assert receipt is not None and receipt.created
    assert project.subscribers.get(str(bea.pk)).email == "b@example.com"
    assert events(project) == 1


def test_a_rollback_takes_the_user_subscriber_and_event_with_it(
    project: Dispatcher, alias: str
) -> None:
    with pytest.raises(Boom), transaction.atomic(using=alias):
        bea = get_user_model().objects.db_manager(alias).create_user("bea", email="b@example.com")
        notify("ticket_created", to=str(bea.pk), data=DATA, using=alias)
        raise Boom
    with pytest.raises(NotFoundError):
        project.subscribers.get(str(bea.pk))
    assert events(project) == 0


def test_an_idempotent_notify_inside_a_transaction_uses_a_savepoint(
    project: Dispatcher, alias: str
) -> None:
    project.subscribers.upsert("u1")
    with transaction.atomic(using=alias):
        first = notify("ticket_created", to="u1", data=DATA, idempotency_key="t1", using=alias)
        again = notify("ticket_created", to="u1", data=DATA, idempotency_key="t1", using=alias)
    assert first is not None and again is not None
    assert (first.created, again.created, again.id) == (True, False, first.id)
    assert events(project) == 1


def test_users_follow_email_changes_and_deletion(project: Dispatcher, alias: str) -> None:
    users = get_user_model().objects.db_manager(alias)
    cid = users.create_user("cid", email="c@example.com")
    cid.email = "cid@example.com"
    cid.save(using=alias)
    assert project.subscribers.get(str(cid.pk)).email == "cid@example.com"
    cid.delete(using=alias)
    with pytest.raises(NotFoundError):
        project.subscribers.get(str(cid.pk))


@pytest.fixture
def elsewhere(
    project: Dispatcher, backend: str, _migrated: dict[str, str], settings: Any
) -> Iterator[Dispatcher]:
    """The dispatcher on the other backend's database: not Django's ``alias``."""
    other_url = _migrated["postgres" if backend == "sqlite" else "sqlite"]
    other = Dispatcher(make_settings(other_url, broker_url=QUIET_BROKER_URL))
    other.subscribers.upsert("u1")
    settings.DISPATCHER = {
        **settings.DISPATCHER,
        "DATABASE_URL": other.settings.database_url,
        "BROKER_URL": QUIET_BROKER_URL,
    }
    reset_dispatcher()
    yield other
    other.close()


def test_with_separate_databases_the_event_is_stored_on_commit(
    elsewhere: Dispatcher, alias: str
) -> None:
    before = events(elsewhere)
    with transaction.atomic(using=alias):
        assert notify("ticket_created", to="u1", data=DATA, using=alias) is None
        assert events(elsewhere) == before
    assert events(elsewhere) == before + 1
    with pytest.raises(Boom), transaction.atomic(using=alias):
        notify("ticket_created", to="u1", data=DATA, using=alias)
        raise Boom
    assert events(elsewhere) == before + 1
    assert get_dispatcher().settings.database_url == elsewhere.settings.database_url


def test_with_separate_databases_a_bad_payload_fails_inside_the_transaction(
    elsewhere: Dispatcher, alias: str
) -> None:
    with pytest.raises(PayloadValidationError), transaction.atomic(using=alias):
        notify("ticket_created", to="u1", data={"ticket_id": "x"}, using=alias)


def test_outside_a_transaction_notify_commits_at_once(project: Dispatcher, alias: str) -> None:
    project.subscribers.upsert("u1")
    receipt = notify("ticket_created", to="u1", data=DATA, using=alias)
    assert receipt is not None and receipt.created
    assert events(project) == 1
