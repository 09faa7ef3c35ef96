"""Operators watch the pipeline in Flower: task names are stable and readable there."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from dispatcher import Dispatcher
from tests.conftest import ROOT, Worker, settings_env, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_flower_shows_dispatcher_tasks(dispatcher: Dispatcher, worker: Worker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = _free_port()
    env = {
        **os.environ,
        **settings_env(dispatcher.settings),
        "PYTHONPATH": str(ROOT),
        "FLOWER_UNAUTHENTICATED_API": "true",
    }
    log = (tmp_path / "flower.log").open("wb")
    flower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"{base}/healthcheck", timeout=1).text == "OK"
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=30)
        # More recipients than the inline limit, so fan-out rings deliver tasks.
        people = [f"u{i}" for i in range(30)]
        for who in people:
            dispatcher.subscribers.upsert(who)
        sent = iter(range(1, 1000))

        def seen() -> set[str]:
            # Flower's event receiver may connect after the first tasks ran: keep sending
            # events until it has seen one of each.
            dispatcher.notify(
                "payout_sent", to=people, data={"payout_id": next(sent), "amount": "1"}
            )
            time.sleep(0.5)
            tasks = httpx.get(f"{base}/api/tasks", timeout=5).json()
            names = {t.get("name") for t in tasks.values()}
            return names if {"dispatcher.fanout", "dispatcher.deliver"} <= names else set()

        names = wait_for(seen, timeout=60)
        assert "dispatcher.fanout" in names
        workers = httpx.get(f"{base}/api/workers", params={"refresh": "1"}, timeout=10).json()
        assert any(name.startswith("test-") for name in workers)
    finally:
        flower.terminate()
        flower.wait(timeout=20)
        log.close()
