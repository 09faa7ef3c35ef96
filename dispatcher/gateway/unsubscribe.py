"""One-click unsubscribe (RFC 8058) for the links in our emails' ``List-Unsubscribe``.

``POST /unsubscribe?token=…`` (what mail clients send, body ``List-Unsubscribe=One-Click``,
and what the confirmation page's button sends) turns the channel off. ``GET`` only shows
a page asking to confirm: link scanners and prefetchers follow GETs, so a GET must never
change anything. The signed token is the only credential; it never reaches the logs.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from dispatcher.channels.email.unsubscribe import (
    UnsubscribeToken,
    verify_unsubscribe_token,
)
from dispatcher.errors import InvalidUnsubscribeTokenError, NotFoundError
from dispatcher.gateway.rest import Gw, run_blocking
from dispatcher.gateway.schemas import Problem

router = APIRouter(
    tags=["unsubscribe"],
    responses={
        400: {"description": "The token is invalid or expired (an HTML page)"},
        # Answered by the server before any route runs: JSON, like the API's errors.
        414: {
            "description": "URL over 8 KiB",
            "content": {"application/json": {"schema": Problem.model_json_schema()}},
        },
    },
)

Token = Annotated[str, Query(min_length=1, max_length=2048, description="The signed token")]

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/static/page.css"></head>
<body>
<h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status)


def _what(request: UnsubscribeToken) -> str:
    scope = request.type or request.category or "all"
    return f"{request.channel.replace('_', ' ')} notifications about {scope.replace('_', ' ')}"


_INVALID = (
    "This unsubscribe link is invalid or has expired. "
    "You can change what you receive in your notification settings."
)


@router.get("/unsubscribe", response_class=HTMLResponse, summary="Confirm unsubscribing")
async def confirm(gw: Gw, token: Token) -> HTMLResponse:
    try:
        request = verify_unsubscribe_token(token, gw.dispatcher.settings.signing_secret)
    except InvalidUnsubscribeTokenError:
        return _page("Link not valid", f"<p>{escape(_INVALID)}</p>", 400)
    form = (
        f"<p>Stop receiving {escape(_what(request))}?</p>"
        f'<form method="post" action="/unsubscribe?token={escape(token, quote=True)}">'
        '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return _page("Unsubscribe", form)


@router.post("/unsubscribe", response_class=HTMLResponse, summary="One-click unsubscribe")
async def unsubscribe(gw: Gw, token: Token) -> HTMLResponse:
    try:
        request, _rule = await run_blocking(lambda: gw.dispatcher.unsubscribe(token))
    except InvalidUnsubscribeTokenError:
        return _page("Link not valid", f"<p>{escape(_INVALID)}</p>", 400)
    except NotFoundError:
        return _page("Unsubscribed", "<p>There is nothing left to unsubscribe from.</p>")
    return _page("Unsubscribed", f"<p>You will no longer receive {escape(_what(request))}.</p>")
