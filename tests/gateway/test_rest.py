"""The REST inbox and preferences against a real uvicorn gateway, on both backends."""

from __future__ import annotations

import httpx
import jwt
import pytest

from dispatcher import Dispatcher
from tests.conftest import Worker
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import (
    SECRET,
    GatewayServer,
    StartGateway,
    deliver,
    token,
)


def test_list_filters_and_cursor_pagination(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    ids = deliver(dispatcher, "ana", 5)
    with gateway.client("ana") as http:
        first = http.get("/api/notifications", params={"limit": 2}).json()
        assert [i["id"] for i in first["items"]] == ids[::-1][:2]
        assert first["next_cursor"] == str(ids[3])
        second = http.get(
            "/api/notifications", params={"limit": 2, "cursor": first["next_cursor"]}
        ).json()
        third = http.get(
            "/api/notifications", params={"limit": 2, "cursor": second["next_cursor"]}
        ).json()
        assert [i["id"] for i in second["items"] + third["items"]] == ids[::-1][2:]
        assert third["next_cursor"] is None

        assert http.post(f"/api/notifications/{ids[0]}/read").json()["read_at"] is not None
        assert http.post(f"/api/notifications/{ids[1]}/archive").json()["archived_at"]
        unread = http.get("/api/notifications", params={"unread": True}).json()["items"]
        assert sorted(i["id"] for i in unread) == ids[2:]
        archived = http.get("/api/notifications", params={"archived": True}).json()["items"]
        assert [i["id"] for i in archived] == [ids[1]]
        by_type = http.get("/api/notifications", params={"type": "payout_sent"}).json()
        assert len(by_type["items"]) == 4
        assert http.get("/api/notifications", params={"category": "sales"}).json()["items"] == []
        assert (
            len(http.get("/api/notifications", params={"category": "payouts"}).json()["items"]) == 4
        )
        assert http.get("/api/notifications", params={"cursor": "x"}).status_code == 422


def test_marking_one_and_all(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    ids = deliver(dispatcher, "ana", 3)
    with gateway.client("ana") as http:
        count = lambda: http.get("/api/notifications/unread-count").json()["count"]  # noqa: E731
        assert count() == 3
        one = http.get(f"/api/notifications/{ids[0]}").json()
        # Two worker processes may fan the three out in any order: match title to data.
        assert one["title"] == f"Payout {one['data']['payout_id']} sent"
        assert one["seen_at"] is None and one["id"] == ids[0]
        assert http.post(f"/api/notifications/{ids[0]}/seen").json()["seen_at"] is not None
        assert count() == 3
        http.post(f"/api/notifications/{ids[0]}/read")
        assert count() == 2
        assert http.post(f"/api/notifications/{ids[0]}/unread").json()["read_at"] is None
        assert count() == 3
        http.post(f"/api/notifications/{ids[1]}/archive")
        assert count() == 2
        assert http.post(f"/api/notifications/{ids[1]}/unarchive").json()["archived_at"] is None
        assert count() == 3
        assert http.post("/api/notifications/read-all").json() == {"changed": 3}
        assert count() == 0
        assert http.post("/api/notifications/read-all").json() == {"changed": 0}


def test_someone_elses_notification_is_404_for_read_mark_and_archive(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    dispatcher.subscribers.upsert("bob")
    [bobs] = deliver(dispatcher, "bob", 1)
    with gateway.client("ana") as http:
        assert http.get(f"/api/notifications/{bobs}").status_code == 404
        for action in ("read", "unread", "seen", "archive", "unarchive"):
            r = http.post(f"/api/notifications/{bobs}/{action}")
            assert r.status_code == 404, action
            assert r.json() == {"detail": "not found"}
        assert http.get("/api/notifications/999999").json() == {"detail": "not found"}
        assert http.get("/api/notifications").json()["items"] == []
        assert http.post("/api/notifications/read-all").json() == {"changed": 0}
    bob = dispatcher.inboxes.get("bob", bobs)
    assert (bob.read_at, bob.seen_at, bob.archived_at) == (None, None, None)


def test_unknown_subscriber_has_an_empty_inbox(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    with gateway.client("never-stored") as http:
        assert http.get("/api/notifications").json() == {"items": [], "next_cursor": None}
        assert http.get("/api/notifications/unread-count").json() == {"count": 0}
        assert http.get("/api/preferences").status_code == 404


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_bad_tokens_get_a_bare_401(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    dispatcher.subscribers.upsert("ana")
    url = gateway.url + "/api/notifications"
    wrong_alg = jwt.encode({"sub": "ana", "exp": 2**40}, SECRET, algorithm="HS512")
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {token('ana')}"},
        {"Authorization": f"Bearer {token('ana', ttl=-5)}"},
        {"Authorization": f"Bearer {token('ana', secret='another-secret-of-32-bytes-or-more')}"},
        {"Authorization": f"Bearer {wrong_alg}"},
    ):
        r = httpx.get(url, headers=headers)
        assert r.status_code == 401, headers
        assert r.json() == {"detail": "unauthorized"}
        assert r.headers["www-authenticate"] == "Bearer"


def test_audience_and_issuer_are_checked_when_configured(
    dispatcher: Dispatcher, start_gateway: StartGateway
) -> None:
    g = start_gateway(
        {"DISPATCHER_GATEWAY_JWT_AUDIENCE": "inbox", "DISPATCHER_GATEWAY_JWT_ISSUER": "tickets"}
    )
    dispatcher.subscribers.upsert("ana")
    url = g.url + "/api/notifications/unread-count"

    def status(**claims: str) -> int:
        return httpx.get(
            url, headers={"Authorization": f"Bearer {token('ana', **claims)}"}
        ).status_code

    assert status(aud="inbox", iss="tickets") == 200
    assert status(aud="other", iss="tickets") == 401
    assert status(aud="inbox", iss="someone") == 401
    assert status() == 401


def test_rate_and_body_limits(dispatcher: Dispatcher, start_gateway: StartGateway) -> None:
    g = start_gateway(
        {
            "DISPATCHER_GATEWAY_REQUESTS_PER_MINUTE": "5",
            "DISPATCHER_GATEWAY_MAX_BODY_BYTES": "200",
        }
    )
    dispatcher.subscribers.upsert("ana")
    with g.client("ana") as http:
        big = http.put(
            "/api/preferences/rules",
            content=b'{"enabled": true, "type": "' + b"x" * 500 + b'"}',
            headers={"content-type": "application/json"},
        )
        assert big.status_code == 413

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b" " * 100

        streamed = http.put(
            "/api/preferences/rules", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        # 12 requests span at most two one-minute windows, so one window sees more than 5.
        statuses = [http.get("/api/notifications/unread-count").status_code for _ in range(12)]
        limited = http.get("/api/notifications/unread-count")
    assert statuses[0] == 200 and 429 in statuses
    assert set(statuses) == {200, 429}
    if limited.status_code == 429:
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json() == {"detail": "too many requests"}
    # The limit is per token: another token of the same subscriber is not affected.
    with g.client("ana", ttl=301) as fresh:
        assert fresh.get("/api/notifications/unread-count").status_code == 200
    # Socket messages count against the same per-token budget.
    with g.socket("ana", ttl=302) as ws:
        ws.recv()
        for _ in range(12):
            ws.send({"type": "ping"})
        answers = [ws.recv()["type"] for _ in range(12)]
    assert answers[0] == "pong" and "error" in answers
    assert set(answers) == {"pong", "error"}


def test_preferences_matrix_and_rules(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    dispatcher.subscribers.upsert("ana")
    with gateway.client("ana") as http:
        prefs = http.get("/api/preferences").json()
        assert prefs["rules"] == []
        assert prefs["matrix"]["ticket_created"]["email"] == {"enabled": True, "because": "default"}
        assert prefs["matrix"]["system_alert"]["in_app"]["because"] == "critical"

        r = http.put(
            "/api/preferences/rules",
            json={"category": "sales", "channel": "email", "enabled": False},
        )
        assert r.status_code == 200
        assert r.json() == {
            "scope": "category",
            "scope_value": "sales",
            "channel": "email",
            "enabled": False,
        }
        prefs = http.get("/api/preferences").json()
        assert prefs["matrix"]["ticket_created"]["email"] == {
            "enabled": False,
            "because": "category=sales channel=email",
        }
        # Critical channels stay on whatever the rules say.
        http.put("/api/preferences/rules", json={"channel": "*", "enabled": False})
        assert http.get("/api/preferences").json()["matrix"]["system_alert"]["in_app"]["enabled"]

        bad = http.put("/api/preferences/rules", json={"type": "nope", "enabled": False})
        assert bad.status_code == 400 and "nope" in bad.json()["detail"]
        both = http.put(
            "/api/preferences/rules",
            json={"type": "ticket_created", "category": "sales", "enabled": True},
        )
        assert both.status_code == 400
        assert (
            http.put("/api/preferences/rules", json={"channel": "sms", "enabled": True}).status_code
            == 400
        )

        removed = http.delete(
            "/api/preferences/rules", params={"category": "sales", "channel": "email"}
        )
        assert removed.json() == {"changed": 1}
        again = http.delete(
            "/api/preferences/rules", params={"category": "sales", "channel": "email"}
        )
        assert again.json() == {"changed": 0}
    assert len(dispatcher.preferences.rules("ana")) == 1


def test_health_openapi_and_demo(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok", "checks": {}}
    ready = httpx.get(gateway.url + "/readyz").json()
    assert ready == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "pubsub": "ok"}}
    spec = httpx.get(gateway.url + "/openapi.json").json()
    assert "/api/notifications/{notification_id}/read" in spec["paths"]
    assert "/api/preferences/rules" in spec["paths"]
    page = httpx.get(gateway.url + "/demo")
    assert page.status_code == 200 and "/static/demo.js" in page.text
    assert "new WebSocket" in httpx.get(gateway.url + "/static/demo.js").text
