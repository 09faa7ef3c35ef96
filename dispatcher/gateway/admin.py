"""Operators' side of the gateway: engagement figures under ``/api/admin/`` and the
``/admin`` page that draws them.

Every route needs a token with :data:`~dispatcher.gateway.auth.ADMIN_SCOPE`: as a bearer
token for the API, or, for the page, pasted once into its login form, which stores it
in an HttpOnly, ``SameSite=Strict`` cookie (no script can read it; no other site can
send it) until the token expires. The page is static HTML, CSS and JavaScript from
``/static`` (no CDN, nothing inline), so the gateway's page CSP holds.
"""

from __future__ import annotations

import time
from html import escape
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from dispatcher.errors import AuthenticationError, ValidationError
from dispatcher.gateway.auth import ADMIN_COOKIE, ADMIN_SCOPE, Principal, require_admin
from dispatcher.gateway.rest import COMMON_RESPONSES, Gw, run_blocking
from dispatcher.gateway.schemas import Problem

STATIC_DIR = Path(__file__).resolve().parent / "static"
Admin = Annotated[Principal, Depends(require_admin)]
#: Longest a login cookie lives, whatever the token's expiry.
COOKIE_MAX_SECONDS = 8 * 3600

api = APIRouter(
    prefix="/api/admin",
    tags=["admin"],
    responses={**COMMON_RESPONSES, 403: {"model": Problem, "description": "Not an admin token"}},
)
pages = APIRouter(include_in_schema=False)


@api.get("/stats", summary="Engagement per type, channel and day, and campaign progress")
async def stats(
    _: Admin,
    gw: Gw,
    since: Annotated[
        str | None,
        Query(max_length=16, description="A window back from now: 1h, 1d, 7d… (default: all)"),
    ] = None,
) -> dict[str, Any]:
    """Dispatched, sent, skipped and failed by reason, deferred, latency p50/p95 (seconds
    from the event to sent), in-app seen/read, email and push clicks; and the newest
    campaigns' progress. The same document as ``dispatcher stats --json``'s
    ``engagement``."""
    try:
        report = await run_blocking(lambda: gw.dispatcher.analytics.report(since=since))
    except ValidationError as exc:
        raise HTTPException(400, str(exc)) from None
    return report.to_dict()


_LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>dispatcher admin: sign in</title><link rel="stylesheet" href="/static/page.css"></head>
<body><h1>Operator sign-in</h1>{error}
<form method="post" action="/admin/login">
<label for="token">Token with the <code>{scope}</code> scope</label><br>
<textarea id="token" name="token" rows="4" cols="60" required></textarea><br>
<button type="submit">Sign in</button></form></body></html>"""


def _login_page(error: str = "", status: int = 200) -> HTMLResponse:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return HTMLResponse(
        _LOGIN.format(error=message, scope=escape(ADMIN_SCOPE)),
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


@pages.get("/admin")
async def admin_page(request: Request) -> Response:
    try:
        await require_admin(request)
    except HTTPException as exc:
        if exc.status_code == 429:
            raise
        error = "" if exc.status_code == 401 else "That token is not an operator's."
        return _login_page(error, 200 if exc.status_code == 401 else 403)
    return FileResponse(
        STATIC_DIR / "admin.html", media_type="text/html", headers={"Cache-Control": "no-store"}
    )


@pages.post("/admin/login")
async def login(request: Request, gw: Gw) -> Response:
    body = (await request.body()).decode("utf-8", errors="replace")
    token = (parse_qs(body).get("token") or [""])[0].strip()
    try:
        caller = gw.verifier.verify(token)
    except AuthenticationError:
        return _login_page("That token is not valid or has expired.", 401)
    if ADMIN_SCOPE not in caller.scopes:
        return _login_page("That token is not an operator's.", 403)
    ttl = max(1, min(COOKIE_MAX_SECONDS, caller.expires - int(time.time())))
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(
        ADMIN_COOKIE,
        token,
        max_age=ttl,
        httponly=True,
        samesite="strict",
        secure=gw.dispatcher.settings.public_url.startswith("https://"),
        path="/",
    )
    return response


@pages.post("/admin/logout")
async def logout() -> Response:
    response = RedirectResponse("/admin", status_code=303)
    response.delete_cookie(ADMIN_COOKIE, path="/")
    return response
