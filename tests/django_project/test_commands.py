"""``manage.py dispatcher …`` runs the CLI with the project's settings."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from dispatcher import Dispatcher

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "postgres"])


def test_sync_subscribers_backfills_existing_users(
    project: Dispatcher, alias: str, capsys: pytest.CaptureFixture[str]
) -> None:
    User = get_user_model()
    # bulk_create sends no signals: users that existed before the app was installed.
    User.objects.db_manager(alias).bulk_create(
        [User(username=f"user{i}", email=f"user{i}@example.com") for i in range(1500)]
    )
    users = list(User.objects.using(alias).order_by("pk"))
    with pytest.raises(Exception):  # noqa: B017 - any "unknown subscriber"
        project.subscribers.get(str(users[0].pk))
    call_command("dispatcher", "sync-subscribers")
    assert "1500 subscribers written" in capsys.readouterr().out
    assert project.subscribers.get(str(users[-1].pk)).email == "user1499@example.com"
    assert len(project.subscribers.list(limit=2000)) == 1500


def test_migrate_send_and_explain_through_manage_py(
    project: Dispatcher, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("dispatcher", "migrate")
    assert "is up to date" in capsys.readouterr().out
    project.subscribers.upsert("u1")
    call_command("dispatcher", "send", "ticket_created", "--to", "u1")
    out = capsys.readouterr().out
    assert out.startswith("event ") and "stored" in out
    event_id = out.split()[1]
    call_command("dispatcher", "explain", event_id)
    assert "ticket_created" in capsys.readouterr().out


def test_a_cli_error_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="unknown notification type"):
        call_command("dispatcher", "send", "no_such_type", "--to", "u1")
