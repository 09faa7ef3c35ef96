"""``dispatcher campaigns …`` as an operator runs it, with ``--json`` everywhere."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result
from sqlalchemy import func, select

from dispatcher import Dispatcher
from dispatcher.cli import main
from dispatcher.db.models import Base
from tests.campaigns.support import add_subscribers, run_all
from tests.conftest import settings_env


def cli(d: Dispatcher, *args: str) -> Result:
    env = {**settings_env(d.settings), "COLUMNS": "200"}
    return CliRunner().invoke(main, ["campaigns", *args], env=env)


def ok_json(d: Dispatcher, *args: str) -> Any:
    result = cli(d, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def rows(d: Dispatcher) -> dict[str, int]:
    with d.store.session() as s:
        return {
            t.name: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
        }


def test_create_preview_start_pause_resume_cancel(dispatcher: Dispatcher) -> None:
    d = dispatcher
    add_subscribers(d, 8, attributes=lambda i: {"role": "seller" if i < 5 else "buyer"})
    created = ok_json(
        d,
        "create",
        "sellers",
        "--type",
        "payout_sent",
        "--data",
        '{"payout_id": 3, "amount": "5.00"}',
        "--where",
        "role=seller",
        "--exclude",
        "s000000",
    )
    cid = str(created["id"])
    assert created["status"] == "draft"
    assert created["audience"] == {"filter": {"role": "seller"}, "exclude": ["s000000"]}

    before = rows(d)
    preview = ok_json(d, "preview", cid)
    assert rows(d) == before  # a dry run writes nothing
    assert preview["targeted"] == 4
    assert preview["channels"]["in_app"]["would_send"] == 4
    assert preview["samples"]["en"]["in_app"]["title"] == "Payout 3 sent"
    text = cli(d, "preview", cid)
    assert text.exit_code == 0 and "would send" in text.output and "Payout 3 sent" in text.output

    run = ok_json(d, "start", cid)
    assert (run["targeted"], run["status"]) == (4, "running")
    assert ok_json(d, "pause", cid)["status"] == "paused"
    assert ok_json(d, "resume", cid)["status"] == "running"
    run_all(d, run["id"])
    shown = ok_json(d, "show", cid)
    assert shown["status"] == "completed"
    assert shown["runs"][0]["progress"]["sent"] == 4
    follow = cli(d, "show", cid, "--follow")
    assert follow.exit_code == 0, follow.output
    assert "4/4" in follow.output and "sent 4" in follow.output
    listed = ok_json(d, "list")
    assert [c["id"] for c in listed] == [created["id"]]
    assert ok_json(d, "cancel", cid)["status"] == "cancelled"
    again = cli(d, "cancel", cid)
    assert again.exit_code == 2
    assert "already cancelled" in again.output


def test_refusals_are_clean_errors(dispatcher: Dispatcher) -> None:
    d = dispatcher
    urgent = cli(d, "create", "x", "--type", "payout_sent", "--all", "--priority", "urgent")
    assert urgent.exit_code == 2
    assert "'urgent' is refused for a campaign" in urgent.output
    assert "Traceback" not in urgent.output
    both = cli(d, "create", "x", "--type", "payout_sent", "--all", "--to", "a")
    assert both.exit_code == 2 and "exactly one of --all, --to, --where or --segment" in both.output
    rate = cli(d, "create", "x", "--type", "payout_sent", "--all", "--rate", "in_app=fast")
    assert rate.exit_code == 2 and "not a whole number" in rate.output
    naive = cli(d, "create", "x", "--type", "payout_sent", "--all", "--start-at", "2030-01-01")
    assert naive.exit_code == 2 and "give an offset" in naive.output
    missing = cli(d, "show", "42")
    assert missing.exit_code == 2 and "no campaign 42" in missing.output
    assert rows(d)["campaigns"] == 0


def test_a_scheduled_recurring_campaign(dispatcher: Dispatcher) -> None:
    made = ok_json(
        dispatcher,
        "create",
        "weekly",
        "--type",
        "payout_sent",
        "--all",
        "--cron",
        "0 9 * * 1",
        "--timezone",
        "Europe/Berlin",
        "--rate",
        "in_app=600",
    )
    assert made["status"] == "scheduled"
    assert made["cron"] == "0 9 * * 1"
    assert made["send_rates"] == {"in_app": 600}
    assert made["next_run_at"].endswith(("08:00:00+00:00", "07:00:00+00:00"))
