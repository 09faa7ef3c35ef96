"""The gateway's push-subscription endpoints and one-click unsubscribe, over real HTTP."""

from __future__ import annotations

import re

import pytest

from dispatcher import Dispatcher
from dispatcher.channels.email.unsubscribe import issue_unsubscribe_token
from dispatcher.channels.web_push.vapid import VapidKey
from tests.gateway_server import *  # noqa: F403
from tests.gateway_server import GatewayServer, StartGateway
from tests.push_service import Device

VAPID = VapidKey.generate()


@pytest.fixture
def push_gateway(start_gateway: StartGateway) -> GatewayServer:
    return start_gateway({"DISPATCHER_PUSH_VAPID_PRIVATE_KEY": VAPID.private_key_b64})


def test_browser_subscribes_lists_and_removes_its_device(
    dispatcher: Dispatcher, push_gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    dispatcher.subscribers.upsert("luis")
    device = Device.new("https://push.example.com/send")
    with push_gateway.client("ana") as ana:
        key = ana.get("/api/push/vapid-public-key")
        assert key.status_code == 200 and key.json() == {"public_key": VAPID.public_key_b64}
        added = ana.post(
            "/api/push/subscriptions",
            json=device.subscription(),
            headers={"User-Agent": "Firefox 132"},
        )
        assert added.status_code == 201, added.text
        assert added.json()["endpoint"] == device.endpoint
        assert "keys" not in added.json() and "p256dh" not in added.json()
        listed = ana.get("/api/push/subscriptions").json()
        assert [(s["endpoint"], s["user_agent"]) for s in listed] == [
            (device.endpoint, "Firefox 132")
        ]
        bad = ana.post(
            "/api/push/subscriptions",
            json={"endpoint": "http://evil.example.com/x", "keys": {"p256dh": "x", "auth": "y"}},
        )
        assert bad.status_code == 400
    with push_gateway.client("luis") as luis:  # someone else cannot remove ana's device
        assert luis.get("/api/push/subscriptions").json() == []
        gone = luis.delete("/api/push/subscriptions", params={"endpoint": device.endpoint})
        assert gone.status_code == 404
    with push_gateway.client("ana") as ana:
        removed = ana.delete("/api/push/subscriptions", params={"endpoint": device.endpoint})
        assert removed.status_code == 204
        assert ana.get("/api/push/subscriptions").json() == []
    assert dispatcher.push_subscriptions.list("ana") == []


def test_vapid_key_is_404_when_push_is_off(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    with gateway.client("ana") as ana:
        assert ana.get("/api/push/vapid-public-key").status_code == 404
        listed = ana.get("/api/push/subscriptions")  # ana is not stored yet: no devices
        assert (listed.status_code, listed.json()) == (200, [])


def test_one_click_unsubscribe(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    dispatcher.subscribers.upsert("ana")
    token = issue_unsubscribe_token(
        dispatcher.settings.signing_secret, "ana", type="ticket_created"
    )
    with gateway.client() as anonymous:
        page = anonymous.get("/unsubscribe", params={"token": token})
        assert page.status_code == 200
        assert "Stop receiving email notifications about ticket created?" in page.text
        assert re.search(r'<form method="post" action="/unsubscribe\?token=', page.text)
        # A GET (a link scanner) changes nothing.
        assert dispatcher.preferences.rules("ana") == []

        done = anonymous.post(
            "/unsubscribe",
            params={"token": token},
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200
        assert "You will no longer receive email notifications about ticket created" in done.text
        again = anonymous.post("/unsubscribe", params={"token": token})
        assert again.status_code == 200

        forged = anonymous.post("/unsubscribe", params={"token": token[:-4] + "AAAA"})
        assert forged.status_code == 400 and "invalid or has expired" in forged.text
        assert anonymous.get("/unsubscribe", params={"token": "nope"}).status_code == 400
    rules = dispatcher.preferences.rules("ana")
    assert [(r.scope, r.scope_value, r.channel, r.enabled) for r in rules] == [
        ("type", "ticket_created", "email", False)
    ]
    assert dispatcher.preferences.matrix("ana")["ticket_created"]["email"].enabled is False
    assert token not in gateway.log()
