"""Security headers on every HTTP answer of the gateway (pure ASGI, so nothing is buffered).

* ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` everywhere:
  tokens travel in URLs (``/demo?token=``, ``/unsubscribe?token=``), and no referrer
  means no page of ours hands them to another site.
* ``Content-Security-Policy`` on every HTML page (the demo, the unsubscribe pages, any
  admin page mounted later): scripts, styles and connections from our own origin only,
  no inline code, no framing (``X-Frame-Options: DENY`` too, for older browsers). The
  pages keep their scripts and styles in ``/static`` for that reason.
* FastAPI's ``/docs`` and ``/redoc`` load Swagger UI / ReDoc from jsDelivr (ReDoc its
  fonts from Google) and start them with an inline script: they get a policy that
  allows exactly that. These pages hold no data of ours; the token is typed in.
* Anything else (JSON, static files) gets ``default-src 'none'; frame-ancestors 'none'``:
  nothing it could contain may run or be framed.
* ``Strict-Transport-Security`` when ``DISPATCHER_GATEWAY_HSTS_SECONDS`` is set (only
  behind HTTPS: browsers would otherwise refuse the plain-HTTP gateway for that long).

A route that sets its own ``Content-Security-Policy`` keeps it. WebSocket connections
pass through untouched (no per-message cost).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Our own pages: everything from this origin, nothing inline, never framed.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: FastAPI's API explorers: their bundles come from jsDelivr and start inline.
DOCS_POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src https://fonts.gstatic.com; connect-src 'self'; worker-src blob:; "
    "frame-ancestors 'none'; base-uri 'none'"
)
#: Not a page: nothing in it may run or be framed.
RESOURCE_POLICY = "default-src 'none'; frame-ancestors 'none'"
DOCS_PATHS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


class SecurityHeaders:
    """Add the headers above to every HTTP response start."""

    def __init__(self, app: ASGIApp, *, hsts_seconds: int = 0) -> None:
        self.app = app
        self.common = [
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
        ]
        if hsts_seconds > 0:
            self.common.append(
                ("Strict-Transport-Security", f"max-age={hsts_seconds}; includeSubDomains")
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope.get("path") in DOCS_PATHS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.common:
                    headers.setdefault(name, value)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault(
                        "Content-Security-Policy", DOCS_POLICY if docs else PAGE_POLICY
                    )
                    headers.setdefault("X-Frame-Options", "DENY")
                else:
                    headers.setdefault("Content-Security-Policy", RESOURCE_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
