"""Item 9 of the security issue: security headers, CSP on our pages, HSTS and CORS.

Against the real uvicorn gateway (headers depend on the app, not on the store: SQLite
only), and the demo page in real Chromium under its policy.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dispatcher import ConfigurationError, Dispatcher, Settings
from tests.gateway.test_demo import browser_page  # noqa: F401  (fixture)
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import GatewayServer, StartGateway, token

APP = "https://app.example.com"
OTHER = "https://evil.example.net"
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
RESOURCE_POLICY = "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture
def backend() -> str:
    return "sqlite"


def _common(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff", response.url
    assert response.headers["referrer-policy"] == "no-referrer", response.url
    assert "strict-transport-security" not in response.headers


def test_pages_get_a_strict_policy_and_every_answer_the_common_headers(
    gateway: GatewayServer,
) -> None:
    with gateway.client() as http:
        demo = http.get("/demo")
        assert demo.status_code == 200
        _common(demo)
        assert demo.headers["content-security-policy"] == PAGE_POLICY
        assert demo.headers["x-frame-options"] == "DENY"
        # The policy allows no inline code: the page has none.
        assert "<script>" not in demo.text and "style=" not in demo.text
        assert '<script src="/static/demo.js">' in demo.text

        for path in ("/unsubscribe?token=forged", "/unsubscribe?token=" + "x" * 3000):
            page = http.get(path)
            assert page.status_code in (400, 422)
            _common(page)
        page = http.get("/unsubscribe", params={"token": "forged"})
        assert page.headers["content-security-policy"] == PAGE_POLICY
        assert "style=" not in page.text and "<script" not in page.text
        assert '<link rel="stylesheet" href="/static/page.css">' in page.text
        assert http.get("/static/page.css").status_code == 200

        docs = http.get("/docs")
        _common(docs)
        assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]

        # JSON, static files, errors from the app and from the middleware in front of it.
        answers = [
            http.get("/healthz"),
            http.get("/static/demo.js"),
            http.get("/api/notifications"),  # 401
            http.get("/nowhere"),  # 404
            http.put(
                "/api/preferences/rules",
                content=b" " * 100_000,
                headers={"Authorization": f"Bearer {token('ana')}"},
            ),  # 413, answered by the body limit
        ]
        assert [a.status_code for a in answers] == [200, 200, 401, 404, 413]
        for answer in answers:
            _common(answer)
            assert answer.headers["content-security-policy"] == RESOURCE_POLICY
        # No CORS unless configured.
        assert all("access-control-allow-origin" not in a.headers for a in answers)


def test_hsts_is_sent_only_when_configured(start_gateway: StartGateway) -> None:
    g = start_gateway({"DISPATCHER_GATEWAY_HSTS_SECONDS": "31536000"})
    with g.client() as http:
        for path in ("/healthz", "/demo", "/nowhere"):
            answer = http.get(path)
            assert answer.headers["strict-transport-security"] == (
                "max-age=31536000; includeSubDomains"
            )


def _preflight(http: httpx.Client, origin: str, method: str = "PUT") -> httpx.Response:
    return http.options(
        "/api/preferences/rules",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_without_an_allow_list_no_origin_is_allowed(gateway: GatewayServer) -> None:
    with gateway.client("ana") as http:
        preflight = _preflight(http, APP)
        assert preflight.status_code == 405  # no CORS handling at all
        assert "access-control-allow-origin" not in preflight.headers
        answer = http.get("/api/notifications/unread-count", headers={"Origin": APP})
        assert answer.status_code == 200
        assert "access-control-allow-origin" not in answer.headers


def test_the_cors_allow_list_lets_the_frontend_in_and_nobody_else(
    dispatcher: Dispatcher, start_gateway: StartGateway
) -> None:
    g = start_gateway({"DISPATCHER_GATEWAY_CORS_ORIGINS": f'["{APP}", "http://localhost:5173"]'})
    dispatcher.subscribers.upsert("ana")
    with g.client("ana") as http:
        allowed = _preflight(http, APP)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == APP
        assert "PUT" in allowed.headers["access-control-allow-methods"]
        assert {"authorization", "content-type"} <= {
            h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")
        }
        assert allowed.headers["access-control-max-age"] == "600"
        assert "access-control-allow-credentials" not in allowed.headers
        _common(allowed)

        refused = _preflight(http, OTHER)
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        refused_method = _preflight(http, APP, method="PATCH")
        assert refused_method.status_code == 400

        got: dict[str, Any] = {}
        for origin in (APP, OTHER, "http://localhost:5173"):
            answer = http.get("/api/notifications/unread-count", headers={"Origin": origin})
            assert answer.status_code == 200  # the browser, not the server, withholds it
            got[origin] = answer.headers.get("access-control-allow-origin")
            assert "origin" in answer.headers.get("vary", "").lower()
        assert got == {APP: APP, OTHER: None, "http://localhost:5173": "http://localhost:5173"}
        # A 429 or 401 the frontend must read carries the header too.
        unauthorized = httpx.get(f"{g.url}/api/notifications", headers={"Origin": APP})
        assert unauthorized.status_code == 401
        assert unauthorized.headers["access-control-allow-origin"] == APP


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('["*"]', "'*' is not allowed"),
        ('["https://app.example.com/"]', "is not an origin"),
        ('["https://app.example.com/inbox"]', "is not an origin"),
        ('["app.example.com"]', "is not an origin"),
        ('["https://user@app.example.com"]', "is not an origin"),
        ('["https://app.example.com:99999"]', "is not an origin"),
        ('["https://app.example.com"', "not a JSON list"),
        ("https://app.example.com, *", "'*' is not allowed"),
    ],
)
def test_the_cors_setting_takes_origins_only(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("DISPATCHER_GATEWAY_CORS_ORIGINS", value)
    with pytest.raises(ConfigurationError, match="DISPATCHER_GATEWAY_CORS_ORIGINS") as error:
        Settings.from_env()
    assert problem in str(error.value)


def test_the_cors_setting_takes_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DISPATCHER_GATEWAY_CORS_ORIGINS", " https://App.example.com ,http://localhost:5173"
    )
    assert Settings.from_env().gateway.cors_origins == [APP, "http://localhost:5173"]
    monkeypatch.setenv("DISPATCHER_GATEWAY_CORS_ORIGINS", "")
    assert Settings.from_env().gateway.cors_origins == []


def test_the_demo_page_works_under_its_policy_and_inline_script_is_blocked(
    dispatcher: Dispatcher,
    gateway: GatewayServer,
    browser_page: object,  # noqa: F811  (the fixture imported above)
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    dispatcher.subscribers.upsert("ana")
    page.goto(f"{gateway.url}/demo?token={token('ana', ttl=600)}")
    # The socket (connect-src 'self' with ws:) and the REST calls went through.
    expect(page.locator("#status")).to_have_text("live")
    expect(page.locator("#badge")).to_have_text("0")
    # The stylesheet from /static applied (style-src 'self').
    assert page.evaluate("getComputedStyle(document.body).maxWidth") == "640px"
    assert not [m for m in messages if "Content Security Policy" in m], messages

    blocked = page.evaluate(
        """() => new Promise((resolve) => {
            document.addEventListener("securitypolicyviolation",
                (e) => resolve(e.violatedDirective), {once: true});
            const s = document.createElement("script");
            s.textContent = "window.injected = true";
            document.body.append(s);
        })"""
    )
    assert blocked.startswith("script-src")
    assert page.evaluate("window.injected === undefined")
