"""The operator CLI, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

from click.testing import CliRunner

from dispatcher.cli import main
from tests.conftest import REDIS_HOST, REDIS_PORT, ROOT, runtime

#: The demo's own worker listens on this Redis database; no other test uses it.
DEMO_REDIS_DB = os.environ.get("DISPATCHER_TEST_DEMO_REDIS_DB", "14")


def test_migrate_creates_the_schema(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "cli.db"
    result = CliRunner().invoke(
        main, ["migrate"], env={"DISPATCHER_DATABASE_URL": f"sqlite:///{db}"}
    )
    assert result.exit_code == 0, result.output
    assert "is up to date" in result.output
    import sqlite3

    tables = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master")}
    assert {"events", "notifications", "deliveries", "subscribers", "alembic_version"} <= tables


def test_bad_setting_is_a_clean_cli_error() -> None:
    result = CliRunner().invoke(main, ["migrate"], env={"DISPATCHER_LEASE_SECONDS": "x"})
    assert result.exit_code == 3  # the environment is not ready
    assert "DISPATCHER_LEASE_SECONDS" in result.output
    assert "Traceback" not in result.output


def _run_demo(tmp_path, broker: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(
        {
            "DISPATCHER_BROKER_URL": broker,
            "DISPATCHER_REDIS_URL": broker,
            "COLUMNS": "200",
            "PYTHONPATH": str(ROOT),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "demo", "--timeout", "90"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_demo_runs_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import redis

    broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/{DEMO_REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    result = _run_demo(tmp_path, broker)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "In-app inbox of luis" in out and "In-app inbox of ana" in out
    assert "Entrada vendida: Copa del Rey Final" in out  # luis reads Spanish
    assert "Ticket sold: Copa del Rey Final" in out  # ana reads English
    assert "duplicate key, same event" in out
    sink = out.split("Emails received by the local SMTP sink", 1)[1]
    assert "luis@example.com" in sink and "Entrada vendida: Copa del Rey Final" in sink
    assert "Traceback" not in out + result.stderr
    assert (tmp_path / "demo-data" / "demo.db").exists()


def test_demo_starts_a_private_redis_when_none_answers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = _run_demo(tmp_path, "redis://127.0.0.1:1/0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Nothing answers at redis://127.0.0.1:1/0" in result.stdout
    assert "Starting a private redis-server" in result.stdout
    assert "In-app inbox of marta" in result.stdout


def _env(d) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from tests.conftest import settings_env

    return settings_env(d.settings)


def test_send_list_stats_and_retry(dispatcher) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select, update

    from dispatcher.db.models import Delivery
    from dispatcher.enums import DeliveryStatus

    runner, env = CliRunner(), _env(dispatcher)
    dispatcher.subscribers.upsert("u1")
    result = runner.invoke(main, ["send", "payout_sent", "--to", "u1", "--key", "k1"], env=env)
    assert result.exit_code == 0, result.output
    assert "event 1 stored: payout_sent to 1 recipient(s), priority medium" in result.output
    again = runner.invoke(main, ["send", "payout_sent", "--to", "u1", "--key", "k1"], env=env)
    assert "already stored (same idempotency key)" in again.output
    bad = runner.invoke(main, ["send", "payout_sent", "--to", "u1", "--data", "{"], env=env)
    listed = runner.invoke(main, ["send", "payout_sent", "--to", "u1", "--data", "[1,2]"], env=env)
    assert listed.exit_code == 2
    assert "invalid payload for 'payout_sent': <root>: must be an object" in listed.output
    assert "Traceback" not in listed.output
    assert bad.exit_code == 2 and "--data is not valid JSON" in bad.output
    unknown = runner.invoke(main, ["send", "nope", "--to", "u1"], env=env)
    assert unknown.exit_code == 2 and "unknown notification type 'nope'" in unknown.output

    runtime(dispatcher).fanout(1)
    with dispatcher.store.session() as s:
        (delivery_id,) = s.scalars(select(Delivery.id))
        s.execute(
            update(Delivery).values(status=DeliveryStatus.FAILED, reason="rejected", attempts=3)
        )
    listing = runner.invoke(
        main, ["deliveries", "list", "--status", "failed"], env={**env, "COLUMNS": "200"}
    )
    assert listing.exit_code == 0 and "rejected" in listing.output and "u1" in listing.output
    stats = runner.invoke(main, ["stats"], env={**env, "COLUMNS": "200"})
    assert stats.exit_code == 0 and "in_app" in stats.output and "rejected=1" in stats.output
    retried = runner.invoke(main, ["deliveries", "retry", str(delivery_id), "999"], env=env)
    assert "requeued 1 delivery; not failed or unknown: 999" in retried.output
    assert retried.exit_code == 1  # something named was not failed
    with dispatcher.store.session() as s:
        row = s.get_one(Delivery, delivery_id)
        assert (row.status, row.attempts, row.reason) == (DeliveryStatus.PENDING, 0, None)
    assert runtime(dispatcher).deliver([delivery_id]).counts == {"sent": 1}

    with dispatcher.store.session() as s:  # failed again: retry every failed one
        s.execute(update(Delivery).values(status=DeliveryStatus.FAILED, reason="rejected"))
    everything = runner.invoke(main, ["deliveries", "retry", "--all-failed"], env=env)
    assert everything.exit_code == 0, everything.output
    assert "retrying failed deliveries" in everything.output  # the progress bar (stderr)
    assert "requeued 1 delivery" in everything.output
    both = runner.invoke(main, ["deliveries", "retry", "1", "--all-failed"], env=env)
    assert both.exit_code == 2 and "give delivery IDS or --all-failed" in both.output
