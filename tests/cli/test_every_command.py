"""Every CLI command, run as a subprocess against a real database (SQLite and
PostgreSQL): ``-h`` works, ``--json`` parses, and each everyday mistake ends in one line
with the fix and a meaningful exit code, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import psycopg
import pytest
import redis
from click.testing import CliRunner

from dispatcher import Dispatcher
from dispatcher.cli import main
from dispatcher.cli.group import SECRET_WARNING, UNAVAILABLE, USAGE, failure_for
from dispatcher.enums import DeliveryStatus
from tests.conftest import PG_ADMIN_URL, ROOT, runtime, settings_env


def cli(env: dict[str, str], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    return subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def as_json(env: dict[str, str], *args: str, code: int = 0) -> Any:
    result = cli(env, *args, "--json")
    assert result.returncode == code, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def one_line(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The command failed with ``code`` and said so in exactly one line on stderr."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_every_command_accepts_h() -> None:
    commands = list(_commands(main))
    assert ("subscribers", "import") in commands and ("doctor",) in commands
    for path in commands:
        result = CliRunner().invoke(main, [*path, "-h"])
        assert result.exit_code == 0, (path, result.output)
        assert result.output.startswith("Usage: "), path


def test_json_of_every_reporting_command(dispatcher: Dispatcher, tmp_path: Path) -> None:
    env = settings_env(dispatcher.settings)
    assert as_json(env, "migrate")["revision"]

    person = as_json(env, "subscribers", "add", "u1", "--email", "u1@example.com", "--locale", "es")
    assert (person["id"], person["locale"]) == ("u1", "es")
    people = tmp_path / "people.csv"
    people.write_text("id,email,plan\nu2,u2@example.com,gold\nu3,,silver\n")
    assert as_json(env, "subscribers", "import", str(people)) == {"written": 3 - 1, "bad": []}
    listed = as_json(env, "subscribers", "list")
    assert [p["id"] for p in listed] == ["u1", "u2", "u3"]
    assert as_json(env, "subscribers", "show", "u2")["attributes"] == {"plan": "gold"}

    sent = as_json(env, "send", "payout_sent", "--to", "u1", "--to", "u2", "--key", "k1")
    assert (sent["event_id"], sent["recipients"], sent["created"]) == (1, 2, True)
    runtime(dispatcher).fanout(sent["event_id"])
    rows = as_json(env, "deliveries", "list")
    assert {r["subscriber_id"] for r in rows} == {"u1", "u2"}
    ids = [r["id"] for r in rows]
    with dispatcher.store.session() as s:  # two deliveries failed for good
        from sqlalchemy import update

        from dispatcher.db.models import Delivery

        s.execute(update(Delivery).values(status=DeliveryStatus.FAILED, reason="rejected"))
    assert as_json(env, "deliveries", "retry", str(ids[0])) == {
        "requeued": 1,
        "ids": [ids[0]],
        "skipped": [],
    }
    assert as_json(env, "deliveries", "retry", str(ids[0]), "999999", code=1)["skipped"] == [
        ids[0],
        999999,
    ]
    assert as_json(env, "deliveries", "retry", "--all-failed")["ids"] == [ids[1]]
    assert as_json(env, "explain", "1")["event_id"] == 1

    preview = as_json(
        env, "templates", "preview", "payout_sent", "--data", '{"payout_id": 5, "amount": "1"}'
    )
    assert "Payout 5 sent" in preview.values()
    validated = cli(env, "templates", "validate", "--json")
    assert validated.returncode in (0, 1) and "problems" in json.loads(validated.stdout)
    source = tmp_path / "title.j2"
    source.write_text("Payout {{ payout_id }}!")
    key = ("payout_sent", "in_app", "en", "title")
    assert as_json(env, "templates", "save", *key, str(source))["version"] == 1
    assert as_json(env, "templates", "save", *key, str(source))["version"] == 2
    assert [v["version"] for v in as_json(env, "templates", "history", *key)] == [2, 1]
    assert [v["version"] for v in as_json(env, "templates", "list")] == [2]
    assert as_json(env, "templates", "restore", *key, "--version", "1")["version"] == 3
    assert as_json(env, "templates", "deactivate", *key)["deactivated"] >= 1

    generated = as_json({}, "vapid", "generate")
    assert set(generated) >= {
        "DISPATCHER_PUSH_VAPID_PRIVATE_KEY",
        "DISPATCHER_PUSH_VAPID_PUBLIC_KEY",
    }
    key_env = {"DISPATCHER_PUSH_VAPID_PRIVATE_KEY": generated["DISPATCHER_PUSH_VAPID_PRIVATE_KEY"]}
    public = as_json(key_env, "vapid", "public-key")["public_key"]
    assert public == generated["DISPATCHER_PUSH_VAPID_PUBLIC_KEY"]


@pytest.fixture
def empty_database(backend: str, tmp_path: Path, postgres_url: str) -> Iterator[str]:
    """A database with no dispatcher schema."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"dispatcher_empty_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_unmigrated_database_says_run_migrate(backend: str, empty_database: str) -> None:
    env = {"DISPATCHER_DATABASE_URL": empty_database}
    for args in (("deliveries", "list"), ("subscribers", "list"), ("explain", "1")):
        one_line(cli(env, *args), UNAVAILABLE, "run `dispatcher migrate`")
    line = one_line(cli(env, "subscribers", "show", "u1", "--json"), UNAVAILABLE)
    assert line.startswith("error: the database at ")
    assert json.loads(cli(env, "deliveries", "list", "--json").stdout)["exit_code"] == UNAVAILABLE


def test_environment_errors_are_one_line_with_the_fix(tmp_path: Path) -> None:
    down = {"DISPATCHER_DATABASE_URL": "postgresql+psycopg://app:s3cret@127.0.0.1:1/app"}
    line = one_line(
        cli(down, "deliveries", "list"), UNAVAILABLE, "is PostgreSQL running at 127.0.0.1:1?"
    )
    assert "s3cret" not in line
    mysql = {"DISPATCHER_DATABASE_URL": "mysql://u@127.0.0.1/x"}
    one_line(cli(mysql, "subscribers", "list"), UNAVAILABLE, "no driver for 'mysql'", "sqlite:///")
    nowhere = {"DISPATCHER_DATABASE_URL": f"sqlite:///{tmp_path}/no/such/dir/x.db"}
    one_line(cli(nowhere, "migrate"), UNAVAILABLE, "does its folder exist")
    bad_setting = {"DISPATCHER_LEASE_SECONDS": "soon"}
    one_line(cli(bad_setting, "deliveries", "list"), UNAVAILABLE, "DISPATCHER_LEASE_SECONDS")


def test_redis_down_is_one_line_with_the_fix() -> None:
    settings_env_down = {
        "DISPATCHER_BROKER_URL": "redis://:pw@127.0.0.1:1/0",
        "DISPATCHER_REDIS_URL": "redis://:pw@127.0.0.1:1/0",
    }
    os.environ.update(settings_env_down)
    try:
        try:
            redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1).ping()
        except redis.ConnectionError as exc:
            failure = failure_for(exc)
    finally:
        for k in settings_env_down:
            os.environ.pop(k)
    assert failure is not None and failure.exit_code == UNAVAILABLE
    assert "is Redis running there?" in failure.message
    assert "redis://***@127.0.0.1:1/0" in failure.message and "pw" not in failure.message
    assert "\n" not in failure.message


def test_input_errors_are_one_line_and_exit_2(dispatcher: Dispatcher, tmp_path: Path) -> None:
    env = settings_env(dispatcher.settings)
    dispatcher.subscribers.upsert("u1")
    one_line(
        cli(env, "send", "payout_sent", "--to", "u1", "--data", "{"),
        USAGE,
        "--data is not valid JSON",
    )
    one_line(cli(env, "send", "nope", "--to", "u1"), USAGE, "unknown notification type 'nope'")
    one_line(
        cli(env, "send", "payout_sent", "--to", "ghost"), USAGE, "unknown subscriber id(s): 'ghost'"
    )
    one_line(cli(env, "subscribers", "show", "ghost"), USAGE, "no subscriber 'ghost'")
    one_line(
        cli(env, "subscribers", "add", "u2", "--email", "nope"), USAGE, "must look like name@domain"
    )
    one_line(cli(env, "explain", "e999"), USAGE)
    headless = tmp_path / "headless.csv"
    headless.write_text("email\nu@example.com\n")
    one_line(cli(env, "subscribers", "import", str(headless)), USAGE, "'id'")
    result = cli(env, "deliveries", "retry")
    assert result.returncode == USAGE and "Traceback" not in result.stderr


def test_import_reports_bad_rows_by_line_and_writes_only_good_ones(
    dispatcher: Dispatcher, tmp_path: Path
) -> None:
    env = settings_env(dispatcher.settings)
    rows = ["id,email,locale,timezone,plan"]
    rows += [f"p{i},p{i}@example.com,es,Europe/Madrid,gold" for i in range(1200)]
    rows.insert(11, "bad1,not-an-email,,,")  # line 12
    rows.insert(501, "bad2,,xx-!!,,")  # line 502
    rows.insert(1101, "bad3,,,Mars/Base,")  # line 1102
    rows.append("p5,,,,platinum")  # the same id again: the later row wins
    path = tmp_path / "people.csv"
    path.write_text("\n".join(rows) + "\n")

    report = as_json(env, "subscribers", "import", str(path), "--batch-size", "250", code=1)
    assert [b["line"] for b in report["bad"]] == [12, 502, 1102]
    assert "name@domain" in report["bad"][0]["reason"]
    assert report["written"] == 1201
    assert not any(p.id.startswith("bad") for p in dispatcher.subscribers.list(limit=5000))
    assert len(dispatcher.subscribers.list(limit=5000)) == 1200
    assert dispatcher.subscribers.get("p5").attributes == {"plan": "platinum"}
    assert dispatcher.subscribers.get("p1199").timezone == "Europe/Madrid"

    text = cli(env, "subscribers", "import", str(path))
    assert text.returncode == 1
    assert f"{path}:502: invalid locale 'xx-!!'" in text.stderr
    assert "importing subscribers" in text.stderr  # the progress bar
    assert text.stdout.strip() == "1201 subscriber(s) written, 3 bad row(s) skipped"


def test_default_signing_secret_warns_outside_a_local_setup(dispatcher: Dispatcher) -> None:
    env = settings_env(dispatcher.settings)
    local = cli(env, "subscribers", "list", "--json")
    assert local.returncode == 0 and SECRET_WARNING not in local.stderr
    public = {**env, "DISPATCHER_PUBLIC_URL": "https://notify.example.com"}
    warned = cli(public, "subscribers", "list", "--json")
    assert warned.returncode == 0 and warned.stderr.strip() == SECRET_WARNING
    json.loads(warned.stdout)  # stdout still parses
    set_ = cli({**public, "DISPATCHER_SIGNING_SECRET": "x" * 40}, "subscribers", "list")
    assert SECRET_WARNING not in set_.stderr
