"""``dispatcher doctor`` against real services: all green with a worker, beat, SMTP and
keys in place; each problem named with its fix, and a non-zero exit, when they are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from dispatcher import Dispatcher, names
from dispatcher.channels.web_push.vapid import VapidKey
from dispatcher.cli.doctor import FAIL, OK, check_beat
from tests.conftest import (
    QUIET_BROKER_URL,
    ROOT,
    Beat,
    StartWorker,
    make_settings,
    settings_env,
    wait_for,
)
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    free_port,
    smtp_server_fixture,
    smtp_server_session,
)


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    return subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "doctor", *args],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_doctor_is_all_green_on_a_ready_deployment(
    dispatcher: Dispatcher,
    start_worker: StartWorker,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    start_worker()
    beat = Beat(dispatcher.settings, tmp_path / "beat.log")
    try:
        heartbeat = names.sweep_heartbeat(dispatcher.settings.redis_prefix)
        client = redis.Redis.from_url(dispatcher.settings.redis_url)
        wait_for(lambda: client.get(heartbeat), timeout=60)
        key = VapidKey.generate()
        env = {
            **settings_env(dispatcher.settings),
            **smtp_server.env(),
            "DISPATCHER_PUSH_VAPID_PRIVATE_KEY": key.private_key_b64,
            "DISPATCHER_SIGNING_SECRET": "a-long-random-secret-for-this-test",
            "DISPATCHER_PUBLIC_URL": "https://notify.example.com",
        }
        result = doctor(env, "--json")
    finally:
        beat.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert set(statuses.values()) == {OK}, report
    for name in ("settings", "database", "migrations", "redis", "broker", "smtp", "vapid"):
        assert name in statuses
    assert {"workers", "beat"} | {f"queue {q}" for q in names.ALL} <= set(statuses)
    assert not smtp_server.messages  # a login, no mail


def test_doctor_names_each_problem_with_its_fix(tmp_path: Path) -> None:
    env = settings_env(make_settings(f"sqlite:///{tmp_path / 'fresh.db'}"))
    env.update(
        {
            # Nobody listens on this broker, so no worker answers and no beat sweeps.
            "DISPATCHER_BROKER_URL": QUIET_BROKER_URL,
            "DISPATCHER_REDIS_PREFIX": "doctor-test-nothing",
            "DISPATCHER_SMTP_HOST": "127.0.0.1",
            "DISPATCHER_SMTP_PORT": str(free_port()),  # closed
            "DISPATCHER_SMTP_SECURITY": "none",
            "DISPATCHER_PUBLIC_URL": "https://notify.example.com",  # default secret: a hole
        }
    )
    result = doctor(env, "--json", "--timeout", "0.5")
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is False
    assert by_name["migrations"]["status"] == FAIL
    assert by_name["migrations"]["fix"] == "run `dispatcher migrate`"
    assert by_name["settings"]["status"] == FAIL
    assert "DISPATCHER_SIGNING_SECRET" in by_name["settings"]["fix"]
    assert by_name["smtp"]["status"] == FAIL
    assert by_name["workers"]["status"] == FAIL
    assert by_name["beat"]["status"] == FAIL
    assert by_name["vapid"]["status"] == "warn"  # push simply off: not a failure
    assert (by_name["redis"]["status"], by_name["broker"]["status"]) == (OK, OK)

    text = doctor(env, "--timeout", "0.5")
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert any(
        line.startswith("FAIL migrations:") and "dispatcher migrate" in line for line in lines
    )
    assert "Traceback" not in text.stdout + text.stderr

    down = doctor(
        {**env, "DISPATCHER_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/x"}, "--json"
    )
    checks = {c["name"]: c for c in json.loads(down.stdout)["checks"]}
    assert down.returncode == 1
    assert "is PostgreSQL running at 127.0.0.1:1?" in checks["database"]["detail"]


def test_beat_is_judged_by_the_age_of_the_sweep_heartbeat() -> None:
    settings = make_settings("sqlite://", redis_prefix="doctor-beat-test")
    client = redis.Redis.from_url(settings.redis_url)
    key = names.sweep_heartbeat(settings.redis_prefix)
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    try:
        client.set(key, (now - timedelta(seconds=4)).isoformat())
        assert check_beat(settings, now).status == OK
        client.set(key, (now - timedelta(seconds=61)).isoformat())
        stale = check_beat(settings, now)
        assert stale.status == FAIL and "61s ago" in stale.detail
    finally:
        client.delete(key)
