"""Operators watch the pipeline in Flower: tasks carry readable names, failures look
like failures, and idle housekeeping does not bury real work."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dispatcher import Dispatcher, names
from dispatcher.engine.broker import celery_app
from tests.conftest import (
    QUIET_BROKER_URL,
    ROOT,
    StartWorker,
    Worker,
    make_settings,
    settings_env,
    wait_for,
)
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

AUTH = ("ops", "flower-test-password")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Flower:
    """``celery -A worker flower`` in a subprocess, with basic auth on, as the README
    runs it."""

    def __init__(self, d: Dispatcher, log_path: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **settings_env(d.settings), "PYTHONPATH": str(ROOT)}
        env.pop("FLOWER_UNAUTHENTICATED_API", None)
        self.log = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker",
                "flower",
                f"--port={self.port}",
                "--address=127.0.0.1",
                f"--basic-auth={AUTH[0]}:{AUTH[1]}",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.healthy, timeout=30)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base}/healthcheck", timeout=1).text == "OK"
        except httpx.HTTPError:
            return False

    def tasks(self) -> dict[str, dict[str, Any]]:
        reply = httpx.get(f"{self.base}/api/tasks", auth=AUTH, timeout=5)
        reply.raise_for_status()
        return dict(reply.json())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        self.log.close()


@pytest.fixture
def flower(dispatcher: Dispatcher, tmp_path: Path) -> Iterator[Flower]:
    f = Flower(dispatcher, tmp_path / "flower.log")
    yield f
    f.stop()


def _listening(d: Dispatcher, flower: Flower) -> None:
    """Flower's event receiver may connect after the first tasks ran: send events until
    it has seen one."""
    people = ["watch0"]
    d.subscribers.upsert("watch0")
    sent = iter(range(1, 1000))

    def seen() -> bool:
        d.notify("payout_sent", to=people, data={"payout_id": next(sent), "amount": "1"})
        time.sleep(0.5)
        return any((t.get("name") or "").startswith("fanout") for t in flower.tasks().values())

    wait_for(seen, timeout=60)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_flower_shows_dispatcher_tasks_behind_auth(
    dispatcher: Dispatcher, worker: Worker, flower: Flower
) -> None:
    assert httpx.get(f"{flower.base}/api/tasks", timeout=5).status_code == 401
    # More recipients than the inline limit, so fan-out rings deliver tasks.
    people = [f"u{i}" for i in range(30)]
    for who in people:
        dispatcher.subscribers.upsert(who)
    _listening(dispatcher, flower)
    dispatcher.notify("payout_sent", to=people, data={"payout_id": 5000, "amount": "1"})

    def named() -> set[str]:
        found = {t.get("name") or "" for t in flower.tasks().values()}
        return found if "deliver in_app payout_sent x30" in found else set()

    found = wait_for(named, timeout=30)
    assert "fanout payout_sent → 30" in found
    # Arguments are ids and counts: no subscriber id reaches Flower.
    for task in flower.tasks().values():
        assert not re.search(r"\bu\d+\b", str(task.get("args", ""))), task
    workers = httpx.get(
        f"{flower.base}/api/workers", params={"refresh": "1"}, auth=AUTH, timeout=10
    ).json()
    assert any(name.startswith("test-") for name in workers)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_flower_shows_a_failed_email_delivery_by_name_and_hides_idle_sweeps(
    dispatcher: Dispatcher, start_worker: StartWorker, flower: Flower
) -> None:
    closed = _free_port()  # nothing listens there: SMTP is down
    w = start_worker(
        {
            "DISPATCHER_SMTP_HOST": "127.0.0.1",
            "DISPATCHER_SMTP_PORT": str(closed),
            "DISPATCHER_SMTP_SECURITY": "none",
            "DISPATCHER_SMTP_TIMEOUT": "2",
            # The first failed attempt is the last: the delivery fails for good.
            "DISPATCHER_SMTP_MAX_ATTEMPTS": "1",
        }
    )
    people = [f"e{i}" for i in range(25)]
    for who in people:
        dispatcher.subscribers.upsert(who, email=f"{who}@example.com")
    _listening(dispatcher, flower)

    # Idle housekeeping: sweeps that find nothing never reach Flower.
    app = celery_app(dispatcher.settings)
    for _ in range(10):
        app.send_task(names.SWEEP, queue=names.MAINTENANCE)
    for _ in range(3):
        app.send_task(names.PURGE, queue=names.MAINTENANCE)

    def idle_ran() -> bool:  # the worker logs each "received" and "succeeded"
        log = w.log()
        return log.count("dispatcher.sweep[") >= 20 and log.count("dispatcher.purge[") >= 6

    wait_for(idle_ran, timeout=30)
    before = flower.tasks()

    data = dict(dispatcher.catalog.get("ticket_created").example)
    dispatcher.notify("ticket_created", to=people, data=data)

    def failed_email() -> dict[str, Any] | None:
        for task in flower.tasks().values():
            name, state = task.get("name"), task.get("state")
            if name == "deliver email ticket_created x25" and state == "FAILURE":
                return task
        return None

    task = wait_for(failed_email, timeout=60)
    assert "DeliveriesFailedError" in task["exception"]
    assert "25 of 25 failed for good (retries_exhausted=25)" in task["exception"]
    assert "@example.com" not in str(task)
    in_app = [
        t for t in flower.tasks().values() if (t.get("name") or "").startswith("deliver in_app")
    ]
    assert in_app and all(t["state"] == "SUCCESS" for t in in_app)

    # A small event is delivered inline by its fan-out task, which fails the same way.
    dispatcher.notify("ticket_created", to=["e0"], data={**data, "ticket_id": 77})

    def failed_inline() -> dict[str, Any] | None:
        for task in flower.tasks().values():
            name, state = task.get("name"), task.get("state")
            if name == "fanout ticket_created → 1" and state == "FAILURE":
                return task
        return None

    inline = wait_for(failed_inline, timeout=60)
    assert "1 of 3 failed for good (retries_exhausted=1)" in inline["exception"]

    # A sweep that did something is one entry, named for what it did.
    quiet = Dispatcher(make_settings(dispatcher.settings.database_url, broker_url=QUIET_BROKER_URL))
    try:
        quiet.subscribers.upsert("late")
        quiet.notify("payout_sent", to=["late"], data={"payout_id": 9999, "amount": "1"})
    finally:
        quiet.close()
    time.sleep(dispatcher.settings.sweep_grace_seconds + 0.2)
    app.send_task(names.SWEEP, queue=names.MAINTENANCE)

    def swept() -> list[str]:
        return [
            t["name"] for t in flower.tasks().values() if (t.get("name") or "").startswith("sweep")
        ]

    assert wait_for(swept, timeout=30) == ["sweep → 1 events, 0 deliveries"]
    housekeeping = {names.SWEEP, names.PURGE}
    assert not any(t.get("name") in housekeeping for t in before.values())
    assert not any(t.get("name") in housekeeping for t in flower.tasks().values())


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_flower_shows_a_transient_failure_as_a_retry_with_its_due_time(
    dispatcher: Dispatcher, start_worker: StartWorker, flower: Flower, smtp_server: SmtpServer
) -> None:
    start_worker(smtp_server.env(DISPATCHER_SMTP_BACKOFF_BASE_SECONDS="600"))
    people = [f"r{i}" for i in range(25)]
    for who in people:
        dispatcher.subscribers.upsert(who, email=f"{who}@example.com")
    smtp_server.fail("r3@example.com", "451 4.3.0 try again later")
    _listening(dispatcher, flower)
    data = dict(dispatcher.catalog.get("ticket_created").example)
    dispatcher.notify("ticket_created", to=people, data=data)

    def retried() -> dict[str, Any] | None:
        for task in flower.tasks().values():
            name, state = task.get("name"), task.get("state")
            if name == "deliver email ticket_created x25" and state == "RETRY":
                return task
        return None

    task = wait_for(retried, timeout=60)
    assert "DeliveriesRetryingError" in task["exception"]
    found = re.search(r"1 of 25 retry at (\S+) \((\w+)=1\)", task["exception"])
    assert found, task["exception"]
    due = datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))
    # The back-off (600 s, jittered) decides the time; the row says the same.
    [row] = dispatcher.deliveries.list(status="scheduled", channel="email")
    assert row.scheduled_for is not None
    assert abs((row.scheduled_for - due).total_seconds()) < 1
    assert due > datetime.now(UTC) + timedelta(seconds=60)
    assert "r3@example.com" not in str(task)
    assert len(smtp_server.messages) == 24
