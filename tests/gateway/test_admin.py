"""``/api/admin/stats`` and the ``/admin`` login over real HTTP: admin scope required."""

from __future__ import annotations

import httpx

from dispatcher import Dispatcher
from dispatcher.gateway.auth import ADMIN_COOKIE, ADMIN_SCOPE
from tests.analytics_dataset import EXPECTED, seed
from tests.gateway_server import *  # noqa: F403
from tests.gateway_server import GatewayServer, token


def admin_token(**claims: object) -> str:
    return token("ops-1", scope=f"openid {ADMIN_SCOPE}", **claims)


def test_admin_stats_need_the_admin_scope(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    seed(dispatcher)
    url = gateway.url + "/api/admin/stats"
    assert httpx.get(url).status_code == 401
    plain = httpx.get(url, headers={"Authorization": f"Bearer {token('ana')}"})
    assert plain.status_code == 403 and ADMIN_SCOPE in plain.json()["detail"]
    other = httpx.get(url, headers={"Authorization": f"Bearer {token('x', scope='read')}"})
    assert other.status_code == 403
    listed = token("ops-2", scp=[ADMIN_SCOPE])
    assert httpx.get(url, headers={"Authorization": f"Bearer {listed}"}).status_code == 200

    answer = httpx.get(url, headers={"Authorization": f"Bearer {admin_token()}"})
    assert answer.status_code == 200, answer.text
    rows = {(r["type"], r["channel"], r["day"]): r for r in answer.json()["rows"]}
    for key, expected in EXPECTED.items():
        for name, value in expected.items():
            assert rows[key][name] == value, (key, name)
    assert answer.json()["campaigns"][0]["name"] == "Winter sale"
    bad = httpx.get(
        url, params={"since": "soon"}, headers={"Authorization": f"Bearer {admin_token()}"}
    )
    assert bad.status_code == 400 and "since" in bad.json()["detail"]


def test_admin_login_sets_an_httponly_cookie(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        first = client.get("/admin")
        assert first.status_code == 200 and 'action="/admin/login"' in first.text
        refused = client.post("/admin/login", data={"token": token("ana")})
        assert refused.status_code == 403 and ADMIN_COOKIE not in client.cookies
        assert client.post("/admin/login", data={"token": "nope"}).status_code == 401
        ok = client.post("/admin/login", data={"token": admin_token()})
        assert ok.status_code == 303 and ok.headers["location"] == "/admin"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = client.get("/admin")
        assert page.status_code == 200 and '<script src="/static/admin.js"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/api/admin/stats").status_code == 200  # the cookie is enough
        client.post("/admin/logout")
        assert client.get("/api/admin/stats").status_code == 401
