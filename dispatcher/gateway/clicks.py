"""``GET /c/{token}``: record a click on a tracked link, then redirect to its target.

The token is signed (:mod:`dispatcher.channels.clicks`): only a URL we signed for a
delivery is ever redirected to, so this is not an open redirect. A forged or malformed
token answers 400, an expired one 410, and neither records anything. Tokens never
reach the logs (the access log redacts ``/c/…``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dispatcher.errors import InvalidClickTokenError
from dispatcher.gateway.rest import Gw, run_blocking
from dispatcher.gateway.schemas import Problem

router = APIRouter(tags=["clicks"])

_GONE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Link not valid</title><link rel="stylesheet" href="/static/page.css"></head>
<body><h1>Link not valid</h1><p>{text}</p></body></html>"""


@router.get(
    "/c/{token}",
    summary="Follow a tracked link",
    response_class=RedirectResponse,
    status_code=302,
    responses={
        302: {"description": "Recorded; redirects to the link's target"},
        400: {"description": "The token is malformed or forged (an HTML page)"},
        410: {"description": "The link has expired (an HTML page)"},
        # Answered by the server before any route runs: JSON, like the API's errors.
        414: {
            "description": "URL over 8 KiB",
            "content": {"application/json": {"schema": Problem.model_json_schema()}},
        },
    },
)
async def follow(gw: Gw, token: Annotated[str, Path(min_length=1, max_length=4096)]) -> Response:
    try:
        target = await run_blocking(lambda: gw.dispatcher.analytics.follow(token))
    except InvalidClickTokenError as exc:
        if exc.expired:
            return HTMLResponse(_GONE.format(text="This link has expired."), status_code=410)
        return HTMLResponse(_GONE.format(text="This link is not valid."), status_code=400)
    return RedirectResponse(
        target.url,
        status_code=302,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )
