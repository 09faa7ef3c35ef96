"""``dispatcher digests list`` and ``Dispatcher.digests`` on both backends."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher import Dispatcher, InvalidArgumentError
from tests.cli.test_every_command import cli, one_line
from tests.conftest import settings_env
from tests.digests.support import by_channel, flush, update

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_digests_list_shows_each_window_and_its_carrier(mailer: Dispatcher) -> None:
    d = mailer
    d.subscribers.upsert("ana", email="ana@example.com")
    d.subscribers.upsert("bob", email="bob@example.com")
    for minute, by in ((0, "Luis"), (4, "Marta")):
        update(d, "ana", by, T0 + timedelta(minutes=minute))
    update(d, "bob", "Luis", T0 + timedelta(minutes=20))
    flush(d, T0 + timedelta(minutes=15))
    env = settings_env(d.settings)

    result = cli(env, "digests", "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    carrier = by_channel(d, "ana")["email"][0].id
    assert [(r["subscriber"], r["status"], r["items"]) for r in rows] == [
        ("bob", "open", 1),
        ("ana", "flushed", 2),
    ]
    assert rows[1]["delivery_id"] == carrier
    assert rows[1]["closes_at"] == (T0 + timedelta(minutes=15)).isoformat()
    only = json.loads(cli(env, "digests", "list", "--status", "open", "--json").stdout)
    assert [r["subscriber"] for r in only] == ["bob"]
    text = cli(env, "digests", "list", "--subscriber", "ana")
    assert text.returncode == 0 and "flushed" in text.stdout and "bob" not in text.stdout
    one_line(cli(env, "digests", "list", "--status", "closed"), 2, "status must be one of")
    assert d.digests(subscriber="ana") == rows[1:]


def test_an_unknown_status_is_a_precise_error(mailer: Dispatcher) -> None:
    with pytest.raises(InvalidArgumentError, match=r"status must be one of \['open'"):
        mailer.digests(status="closed")
