"""``dispatcher stats --since … [--json]`` in a subprocess, against a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from dispatcher import Dispatcher, names
from tests.analytics_dataset import EXPECTED, seed
from tests.conftest import ROOT, settings_env


def run_stats(d: Dispatcher, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(settings_env(d.settings))
    env.update({"PYTHONPATH": str(ROOT), "COLUMNS": "250"})
    return subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "stats", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_stats_json_has_every_figure(dispatcher: Dispatcher) -> None:
    seed(dispatcher)
    result = run_stats(dispatcher, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    rows = {(r["type"], r["channel"], r["day"]): r for r in doc["engagement"]["rows"]}
    assert set(rows) == set(EXPECTED)
    for key, expected in EXPECTED.items():
        for name, value in expected.items():
            assert rows[key][name] == value, (key, name)
    assert doc["deliveries"]["email"] == {"failed": 1, "scheduled": 1, "sent": 5, "skipped": 2}
    assert doc["engagement"]["campaigns"][0]["sent"] == 2
    assert set(doc["queues"]) == set(names.ALL)
    assert all(isinstance(n, int) for n in doc["queues"].values())


def test_stats_since_window_and_table(dispatcher: Dispatcher) -> None:
    seed(dispatcher)  # the newest rows are an hour before 2026-11-30 12:00: long ago now
    result = run_stats(dispatcher, "--since", "1h", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["engagement"]["rows"] == []
    table = run_stats(dispatcher)
    assert table.returncode == 0, table.stderr
    assert "ticket_created" in table.stdout and "opted_out=2" in table.stdout
    assert "8.8" in table.stdout  # email p95


def test_stats_refuses_a_bad_window_in_one_line(dispatcher: Dispatcher) -> None:
    result = run_stats(dispatcher, "--since", "yesterday")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: since: expected a number and a unit (s, m, h, d, w), like 1h or 7d; got 'yesterday'"
    ]
