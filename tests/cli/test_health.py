"""``dispatcher health``: each role's container health check, against real processes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from dispatcher import Dispatcher
from dispatcher.cli import main
from dispatcher.cli.health import Options, check_beat, node_name, role_of
from tests.conftest import Worker
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import GatewayServer, free_port


def health(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(main, ["health", *args, "--json"], env=env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.output)


@pytest.mark.parametrize(
    ("argv", "role", "url", "node", "schedule"),
    [
        (["celery", "-A", "worker", "worker", "--loglevel", "INFO"], "worker", None, None, None),
        (
            ["/venv/bin/python", "-m", "celery", "--app", "worker", "worker", "-n", "bulk@%h"],
            "worker",
            None,
            "bulk@%h",
            None,
        ),
        (["celery", "-A", "worker", "beat", "-s", "/var/b"], "beat", None, None, "/var/b"),
        (["celery", "-A", "worker", "beat", "--schedule=/x/s"], "beat", None, None, "/x/s"),
        (
            ["celery", "-A", "worker", "flower", "--port=5566", "--address=0.0.0.0"],
            "flower",
            "http://127.0.0.1:5566/healthcheck",
            None,
            None,
        ),
        (
            ["dispatcher", "gateway", "--host", "10.1.2.3", "--port", "8001"],
            "gateway",
            "http://10.1.2.3:8001/readyz",
            None,
            None,
        ),
        (
            ["/sbin/docker-init", "--", "dispatcher", "gateway", "--host", "::"],
            "gateway",
            "http://127.0.0.1:8000/readyz",
            None,
            None,
        ),
        (["dispatcher", "migrate"], "migrate", None, None, None),
    ],
)
def test_the_role_and_its_options_are_read_from_the_command_line(
    argv: list[str], role: str, url: str | None, node: str | None, schedule: str | None
) -> None:
    got, options = role_of(argv)
    assert got == role
    assert options.url == url
    assert options.node == node
    assert options.schedule_file == (Path(schedule) if schedule else None)


def test_a_command_of_no_role_is_refused() -> None:
    result = CliRunner().invoke(main, ["health", "auto", "--pid", str(os.getpid())])
    assert result.exit_code == 1
    assert "cannot tell the role" in result.output


def test_a_missing_process_is_a_clean_error() -> None:
    result = CliRunner().invoke(main, ["health", "auto", "--pid", "999999999"])
    assert result.exit_code == 1
    assert "cannot read process 999999999" in result.output


def test_node_names_fill_in_the_host_name() -> None:
    import socket

    host = socket.gethostname()
    assert node_name(None) == f"celery@{host}"
    assert node_name("bulk@%h") == f"bulk@{host}"
    assert node_name("bulk") == f"bulk@{host}"
    assert node_name("w@%n.x") == f"w@{host.split('.')[0]}.x"


def test_beat_is_healthy_while_its_schedule_file_is_fresh(tmp_path: Path) -> None:
    schedule = tmp_path / "celerybeat-schedule"
    assert not check_beat(Options(schedule_file=schedule)).healthy
    # dbm may add a suffix to the name beat gives it.
    (tmp_path / "celerybeat-schedule.db").write_bytes(b"x")
    written = (tmp_path / "celerybeat-schedule.db").stat().st_mtime
    assert check_beat(Options(schedule_file=schedule, max_age=60), now=written + 59).healthy
    stale = check_beat(Options(schedule_file=schedule, max_age=60), now=written + 61)
    assert not stale.healthy
    assert "written 61s ago (limit 60s)" in stale.detail
    code, body = health("beat", "--schedule-file", str(schedule), "--max-age", "3600")
    assert (code, body["healthy"]) == (0, True)


def test_gateway_is_healthy_when_readyz_answers(gateway: GatewayServer) -> None:
    code, body = health("gateway", "--url", f"{gateway.url}/readyz")
    assert (code, body["healthy"]) == (0, True)
    assert body["checks"] == {"database": "ok", "redis": "ok", "pubsub": "ok"}
    # Found by its command line, as the image's HEALTHCHECK does.
    code, body = health("auto", "--pid", str(gateway.process.pid))
    assert (code, body["role"]) == (0, "gateway")
    # Flower's health check asked of the gateway: a 404, not "OK".
    code, body = health("flower", "--url", f"{gateway.url}/healthcheck")
    assert (code, body["healthy"]) == (1, False)


def test_gateway_and_flower_that_do_not_answer_are_unhealthy() -> None:
    port = free_port()
    for role, path in (("gateway", "/readyz"), ("flower", "/healthcheck")):
        code, body = health(role, "--url", f"http://127.0.0.1:{port}{path}", "--timeout", "2")
        assert (code, body["healthy"]) == (1, False)
        assert "refused" in str(body["detail"]).lower()
    result = CliRunner().invoke(main, ["health", "gateway", "--url", "file:///etc/passwd"])
    assert result.exit_code == 1
    assert "is not an http(s) URL" in result.output


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_worker_is_healthy_when_it_answers_a_ping(dispatcher: Dispatcher, worker: Worker) -> None:
    env = {"DISPATCHER_BROKER_URL": dispatcher.settings.broker_url}
    # The node name (-n test-…@%h) comes from the worker's command line.
    code, body = health("auto", "--pid", str(worker.process.pid), env=env)
    assert (code, body["role"], body["healthy"]) == (0, "worker", True)
    assert str(body["detail"]).endswith(": pong")
    started = time.monotonic()
    code, body = health("worker", "--node", "nobody@nowhere", "--timeout", "1", env=env)
    assert (code, body["healthy"]) == (1, False)
    assert time.monotonic() - started < 10


def test_migrate_is_healthy_when_the_database_answers(tmp_path: Path) -> None:
    code, body = health("migrate", env={"DISPATCHER_DATABASE_URL": f"sqlite:///{tmp_path}/h.db"})
    assert (code, body["healthy"]) == (0, True)
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"
    code, body = health("migrate", env={"DISPATCHER_DATABASE_URL": closed})
    assert (code, body["detail"]) == (1, "database: OperationalError")


def test_text_output_says_healthy_or_unhealthy(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["health", "beat", "--schedule-file", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.output.startswith("beat: UNHEALTHY: ")
