"""Campaigns over the gateway's REST for admins, against a real uvicorn gateway and a
real worker: a token without the admin scope gets 403; an admin creates, previews,
starts and follows a campaign."""

from __future__ import annotations

from dispatcher import Dispatcher
from tests.campaigns.support import PAYOUT, add_subscribers
from tests.conftest import Worker, wait_for
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import GatewayServer

BODY = {"name": "spring", "type": "payout_sent", "data": PAYOUT, "audience": {"all": True}}


def test_only_admins_reach_campaigns(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    with gateway.client("ana") as http:
        assert http.get("/api/admin/campaigns").status_code == 403
        assert http.post("/api/admin/campaigns", json=BODY).status_code == 403
    with gateway.client("ana", scope="openid profile") as http:
        assert http.get("/api/admin/campaigns").status_code == 403
    with gateway.client() as anonymous:
        assert anonymous.get("/api/admin/campaigns").status_code == 401
    assert dispatcher.campaigns.list() == []


def test_an_admin_creates_previews_starts_and_follows_a_campaign(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    add_subscribers(dispatcher, 25)
    with gateway.client("ops", scope="dispatcher:admin") as http:
        refused = http.post("/api/admin/campaigns", json={**BODY, "priority": "urgent"})
        assert refused.status_code == 400
        assert "'urgent' is refused for a campaign" in refused.json()["detail"]
        made = http.post("/api/admin/campaigns", json=BODY)
        assert made.status_code == 201, made.text
        cid = made.json()["id"]
        preview = http.get(f"/api/admin/campaigns/{cid}/preview").json()
        assert preview["targeted"] == 25
        assert preview["channels"]["in_app"]["would_send"] == 25
        assert http.post(f"/api/admin/campaigns/{cid}/start").json()["targeted"] == 25

        def done() -> bool:
            info = http.get(f"/api/admin/campaigns/{cid}").json()
            return info["status"] == "completed" and info["runs"][0]["progress"]["sent"] == 25

        wait_for(done, timeout=60)
        assert [c["id"] for c in http.get("/api/admin/campaigns").json()] == [cid]
        conflict = http.post(f"/api/admin/campaigns/{cid}/pause")
        assert conflict.status_code == 409
        assert http.post(f"/api/admin/campaigns/{cid}/cancel").json()["status"] == "cancelled"
        assert http.get("/api/admin/campaigns/999").status_code == 404
