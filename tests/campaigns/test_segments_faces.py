"""Segments and campaign templates through the operators' faces: ``dispatcher campaigns
segments …`` and ``campaigns create --segment/--templates`` with ``--json``, and the
admin REST routes (``/api/admin/segments``; a token without the admin scope gets 403)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from dispatcher import Dispatcher
from dispatcher.cli import main
from tests.campaigns.support import PAYOUT, add_subscribers, run_all
from tests.conftest import settings_env
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import GatewayServer


def cli(d: Dispatcher, *args: str) -> Result:
    env = {**settings_env(d.settings), "COLUMNS": "200"}
    return CliRunner().invoke(main, ["campaigns", *args], env=env)


def ok_json(d: Dispatcher, *args: str) -> Any:
    result = cli(d, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_segments_and_campaign_templates_from_the_cli(
    dispatcher: Dispatcher, tmp_path: Path
) -> None:
    d = dispatcher
    add_subscribers(d, 6, attributes=lambda i: {"role": "seller" if i < 4 else "buyer"})
    made = ok_json(d, "segments", "create", "sellers", "--where", "role=seller")
    assert (made["name"], made["filter"]) == ("sellers", {"role": "seller"})
    assert [s["name"] for s in ok_json(d, "segments", "list")] == ["sellers"]
    shown = ok_json(d, "segments", "show", "sellers")
    assert shown["filter"] == {"role": "seller"} and shown["description"] is None
    changed = ok_json(d, "segments", "update", "sellers", "--description", "all who sell")
    assert changed["description"] == "all who sell"
    text = cli(d, "segments", "list")
    assert text.exit_code == 0 and "all who sell" in text.output

    templates = tmp_path / "content.json"
    templates.write_text(
        json.dumps({"in_app": {"en": {"title": "Hi {{ payout_id }}", "body": "{{ amount }}"}}})
    )
    created = ok_json(
        d,
        "create",
        "own",
        "--type",
        "payout_sent",
        "--data",
        json.dumps(PAYOUT),
        "--segment",
        "sellers",
        "--exclude",
        "s000001",
        "--templates",
        str(templates),
    )
    assert created["audience"] == {"segment": "sellers", "exclude": ["s000001"]}
    assert created["templates"]["in_app"]["en"]["title"] == "Hi {{ payout_id }}"
    cid = str(created["id"])
    assert ok_json(d, "preview", cid)["samples"]["en"]["in_app"]["title"] == "Hi 7"
    run = ok_json(d, "start", cid)
    assert run["targeted"] == 3
    run_all(d, run["id"])
    assert [i.title for i in d.inbox("s000000")] == ["Hi 7"]
    assert d.inbox("s000001") == [] and d.inbox("s000004") == []

    # Completed, but it may be started again: the segment stays until it is cancelled.
    assert ok_json(d, "show", cid)["status"] == "completed"
    used = cli(d, "segments", "delete", "sellers")
    assert used.exit_code == 2
    assert f"segment 'sellers' is used by campaign(s) {cid} (completed)" in used.output
    ok_json(d, "cancel", cid)
    assert ok_json(d, "segments", "delete", "sellers") == {"deleted": "sellers"}

    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"in_app": {"en": {"title": "{{ nope }}", "body": "b"}}}))
    refused = cli(d, "create", "x", "--type", "payout_sent", "--all", "--templates", str(broken))
    assert refused.exit_code == 2
    assert "templates.in_app.en.title:1: missing variable 'nope'" in refused.output
    assert "Traceback" not in refused.output
    ok_json(d, "segments", "create", "vip", "--where", "plan=gold")
    ok_json(d, "create", "v", "--type", "payout_sent", "--segment", "vip")
    in_use = cli(d, "segments", "delete", "vip")
    assert in_use.exit_code == 2
    assert "segment 'vip' is used by campaign(s)" in in_use.output and "(draft)" in in_use.output
    bad = cli(d, "segments", "create", "Bad Name", "--where", "a=b")
    assert bad.exit_code == 2 and "lower-case letters" in bad.output
    missing = cli(d, "segments", "show", "nobody")
    assert missing.exit_code == 2 and "no segment 'nobody'" in missing.output


def test_only_admins_reach_segments(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    body = {"name": "north", "filter": {"region": "north"}}
    with gateway.client("ana") as http:
        assert http.get("/api/admin/segments").status_code == 403
        assert http.post("/api/admin/segments", json=body).status_code == 403
        assert http.delete("/api/admin/segments/north").status_code == 403
    with gateway.client() as anonymous:
        assert anonymous.get("/api/admin/segments").status_code == 401
    assert dispatcher.campaigns.segments.list() == []


def test_an_admin_manages_segments_and_campaign_templates_over_rest(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    add_subscribers(dispatcher, 5, attributes=lambda i: {"region": "north" if i < 3 else "south"})
    with gateway.client("ops", scope="dispatcher:admin") as http:
        made = http.post(
            "/api/admin/segments",
            json={"name": "north", "filter": {"region": "north"}, "description": "N"},
        )
        assert made.status_code == 201, made.text
        assert made.json()["filter"] == {"region": "north"}
        bad = http.post("/api/admin/segments", json={"name": "x", "filter": {"a": [1]}})
        assert bad.status_code == 400 and "string, number or boolean" in bad.json()["detail"]
        assert [s["name"] for s in http.get("/api/admin/segments").json()] == ["north"]
        patched = http.patch("/api/admin/segments/north", json={"filter": {"region": "south"}})
        assert patched.json()["filter"] == {"region": "south"}
        assert http.get("/api/admin/segments/ghost").status_code == 404

        campaign = {
            "name": "own",
            "type": "payout_sent",
            "data": PAYOUT,
            "audience": {"segment": "north"},
            "templates": {"in_app": {"en": {"title": "P{{ payout_id }}", "body": "b"}}},
        }
        broken = {
            **campaign,
            "templates": {"in_app": {"en": {"title": "{% if %}", "body": "b"}}},
        }
        refused = http.post("/api/admin/campaigns", json=broken)
        assert refused.status_code == 400
        assert refused.json()["detail"].startswith("templates.in_app.en.title:1:")
        created = http.post("/api/admin/campaigns", json=campaign)
        assert created.status_code == 201, created.text
        cid = created.json()["id"]
        assert http.get(f"/api/admin/campaigns/{cid}").json()["templates"] == campaign["templates"]
        preview = http.get(f"/api/admin/campaigns/{cid}/preview").json()
        assert preview["targeted"] == 2  # the edited filter: south
        assert preview["samples"]["en"]["in_app"]["title"] == "P7"

        conflict = http.delete("/api/admin/segments/north")
        assert conflict.status_code == 409
        assert f"used by campaign(s) {cid} (draft)" in conflict.json()["detail"]
        http.post(f"/api/admin/campaigns/{cid}/cancel")
        assert http.delete("/api/admin/segments/north").status_code == 204
        assert http.get("/api/admin/segments").json() == []
