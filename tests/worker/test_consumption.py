"""A worker's queues and pool size come from settings; its command line still wins."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from dispatcher import Dispatcher, Settings
from dispatcher.errors import ConfigurationError
from dispatcher.worker.consumption import queue_names
from tests.conftest import REDIS_DB, REDIS_HOST, REDIS_PORT, CeleryProcess

#: A broker database of its own: these workers must not take other tests' tasks.
BROKER = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB + 3}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("urgent,high", ["dispatcher.urgent", "dispatcher.high"]),
        (" bulk , dispatcher.bulk ", ["dispatcher.bulk"]),
        ('["maintenance", "low"]', ["dispatcher.maintenance", "dispatcher.low"]),
    ],
)
def test_queue_names_short_or_full(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: list[str]
) -> None:
    monkeypatch.setenv("DISPATCHER_WORKER_QUEUES", value)
    assert queue_names(Settings.from_env()) == expected


def test_an_unknown_queue_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_WORKER_QUEUES", "urgent,emails")
    with pytest.raises(
        ConfigurationError, match=r"DISPATCHER_WORKER_QUEUES: unknown queue 'emails'"
    ):
        queue_names(Settings.from_env())
    monkeypatch.setenv("DISPATCHER_WORKER_QUEUES", "[urgent")
    with pytest.raises(ConfigurationError, match="DISPATCHER_WORKER_QUEUES"):
        Settings.from_env()
    monkeypatch.setenv("DISPATCHER_WORKER_QUEUES", "")
    monkeypatch.setenv("DISPATCHER_WORKER_CONCURRENCY", "-1")
    with pytest.raises(ConfigurationError, match="DISPATCHER_WORKER_CONCURRENCY"):
        Settings.from_env()


def _consumed(log: str) -> list[str]:
    section = log.split("[queues]", 1)[1].split("[tasks]", 1)[0]
    return re.findall(r"\.> (\S+)", section)


def _worker(settings: Settings, tmp_path: Path, env: dict[str, str], *args: str) -> str:
    w = CeleryProcess(
        settings,
        tmp_path / f"{uuid.uuid4().hex[:6]}.log",
        env,
        ["worker", "--loglevel", "INFO", "--without-mingle", "--without-gossip", *args],
    )
    w.stop()
    return w.log()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_worker_consumes_the_queues_and_pool_size_of_its_settings(
    dispatcher: Dispatcher, tmp_path: Path
) -> None:
    settings = dispatcher.settings.model_copy(update={"broker_url": BROKER})
    env = {"DISPATCHER_WORKER_QUEUES": "bulk", "DISPATCHER_WORKER_CONCURRENCY": "1"}
    log = _worker(settings, tmp_path, env, "-n", f"bulk-{uuid.uuid4().hex[:6]}@%h")
    assert _consumed(log) == ["dispatcher.bulk"]
    assert "concurrency: 1 (prefork)" in log
    # The command line wins over the settings.
    log = _worker(
        settings,
        tmp_path,
        env,
        "-Q",
        "dispatcher.urgent",
        "-c",
        "2",
        "-n",
        f"u-{uuid.uuid4().hex[:6]}@%h",
    )
    assert _consumed(log) == ["dispatcher.urgent"]
    assert "concurrency: 2 (prefork)" in log
