"""The REST inbox under ``/api/``: the caller's notifications and preferences.

Every route authenticates with ``Authorization: Bearer <jwt>`` and counts against the
token's request rate. A notification that is not the caller's answers 404, exactly as
one that does not exist. Changes that move the unread count are published so that
every open socket of the caller, on any gateway, shows the new count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from dispatcher.errors import AuthenticationError, NotFoundError
from dispatcher.gateway.auth import Principal
from dispatcher.gateway.schemas import (
    ID_MAX,
    NAME_PATTERN,
    Changed,
    EffectiveOut,
    NotificationOut,
    NotificationPage,
    PreferencesOut,
    Problem,
    RuleIn,
    RuleOut,
    UnreadCount,
)
from dispatcher.gateway.state import Gateway

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="A JWT issued by the backend app.")

#: Answers every route may give besides its own.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Invalid input"},
    401: {"model": Problem, "description": "Missing, invalid or expired token"},
    413: {"model": Problem, "description": "Request body too large"},
    414: {"model": Problem, "description": "URL over 8 KiB"},
    429: {"model": Problem, "description": "Too many requests for this token"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such notification in your inbox"},
}


def gateway(request: Request) -> Gateway:
    state: Gateway = request.app.state.gateway
    return state


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated, rate-limited caller of a REST route."""
    gw = gateway(request)
    try:
        caller = gw.verifier.verify(credentials.credentials if credentials else None)
    except AuthenticationError:
        raise HTTPException(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"}) from None
    allowed, retry_after = await gw.rate.allow(caller.token_key)
    if not allowed:
        raise HTTPException(429, "too many requests", headers={"Retry-After": str(retry_after)})
    return caller


Caller = Annotated[Principal, Depends(principal)]
Gw = Annotated[Gateway, Depends(gateway)]
NotificationId = Annotated[int, Path(ge=1, le=ID_MAX, description="A notification id")]

router = APIRouter(prefix="/api", responses=COMMON_RESPONSES)


async def run_blocking(fn: Callable[[], T]) -> T:
    return await run_in_threadpool(fn)


def _not_found() -> HTTPException:
    return HTTPException(404, "not found")


@router.get("/notifications", tags=["inbox"], summary="List my notifications")
async def list_notifications(
    caller: Caller,
    gw: Gw,
    unread: Annotated[bool, Query(description="Only unread ones")] = False,
    archived: Annotated[bool, Query(description="Archived ones instead of the inbox")] = False,
    category: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    type: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    cursor: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,18}$", description="next_cursor of the last page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> NotificationPage:
    """Newest first, ``limit`` per page; follow ``next_cursor`` for older ones."""
    inbox = gw.dispatcher.inboxes
    limit = min(limit, gw.settings.max_page_size)

    def fetch() -> NotificationPage:
        try:
            items = inbox.list(
                caller.subscriber_id,
                limit=limit + 1,
                unread_only=unread,
                archived=archived,
                category=category,
                type=type,
                before_id=int(cursor) if cursor else None,
            )
        except NotFoundError:  # a subscriber the app has not stored yet has an empty inbox
            items = []
        page = items[:limit]
        more = len(items) > limit
        return NotificationPage(
            items=[NotificationOut.of(i) for i in page],
            next_cursor=str(page[-1].id) if more and page else None,
        )

    return await run_blocking(fetch)


@router.get("/notifications/unread-count", tags=["inbox"], summary="My unread count")
async def unread_count(caller: Caller, gw: Gw) -> UnreadCount:
    return UnreadCount(count=await gw.unread_count(caller.subscriber_id))


@router.post("/notifications/read-all", tags=["inbox"], summary="Mark all my notifications read")
async def mark_all_read(caller: Caller, gw: Gw) -> Changed:
    def mark() -> int:
        try:
            return gw.dispatcher.inboxes.mark_all_read(caller.subscriber_id)
        except NotFoundError:
            return 0

    changed = await run_blocking(mark)
    if changed:
        await gw.inbox_changed(caller.subscriber_id)
    return Changed(changed=changed)


@router.get(
    "/notifications/{notification_id}",
    tags=["inbox"],
    summary="One of my notifications",
    responses=NOT_FOUND,
)
async def get_notification(
    caller: Caller, gw: Gw, notification_id: NotificationId
) -> NotificationOut:
    try:
        item = await run_blocking(
            lambda: gw.dispatcher.inboxes.get(caller.subscriber_id, notification_id)
        )
    except NotFoundError:
        raise _not_found() from None
    return NotificationOut.of(item)


def _marker(action: str, *, moves_count: bool, summary: str) -> None:
    """Register ``POST /api/notifications/{id}/<action>``."""

    async def mark(caller: Caller, gw: Gw, notification_id: NotificationId) -> NotificationOut:
        inbox = gw.dispatcher.inboxes
        method = getattr(inbox, _ACTIONS[action])

        def run() -> Any:
            method(caller.subscriber_id, notification_id)
            return inbox.get(caller.subscriber_id, notification_id)

        try:
            item = await run_blocking(run)
        except NotFoundError:
            raise _not_found() from None
        if moves_count:
            await gw.inbox_changed(caller.subscriber_id)
        return NotificationOut.of(item)

    mark.__name__ = f"mark_{action}"
    router.add_api_route(
        f"/notifications/{{notification_id}}/{action}",
        mark,
        methods=["POST"],
        tags=["inbox"],
        summary=summary,
        responses=NOT_FOUND,
    )


_ACTIONS = {
    "read": "mark_read",
    "unread": "mark_unread",
    "seen": "mark_seen",
    "archive": "archive",
    "unarchive": "unarchive",
}
_marker("read", moves_count=True, summary="Mark one read")
_marker("unread", moves_count=True, summary="Mark one unread")
_marker("seen", moves_count=False, summary="Mark one seen")
_marker("archive", moves_count=True, summary="Archive one")
_marker("unarchive", moves_count=True, summary="Move one back to the inbox")


@router.get("/preferences", tags=["preferences"], summary="My preference rules and their effect")
async def get_preferences(caller: Caller, gw: Gw) -> PreferencesOut:
    prefs = gw.dispatcher.preferences

    def read() -> PreferencesOut:
        try:
            rules = prefs.rules(caller.subscriber_id)
            matrix = prefs.matrix(caller.subscriber_id)
        except NotFoundError:
            raise _not_found() from None
        return PreferencesOut(
            rules=[RuleOut.of(r) for r in rules],
            matrix={
                t: {c: EffectiveOut.of(e) for c, e in row.items()} for t, row in matrix.items()
            },
        )

    return await run_blocking(read)


@router.put(
    "/preferences/rules",
    tags=["preferences"],
    summary="Turn a channel on or off for a type, a category or everything",
    responses={404: {"model": Problem, "description": "Subscriber not stored"}},
)
async def put_rule(caller: Caller, gw: Gw, rule: RuleIn) -> RuleOut:
    def write() -> RuleOut:
        try:
            stored = gw.dispatcher.preferences.set(
                caller.subscriber_id,
                enabled=rule.enabled,
                channel=rule.channel,
                type=rule.type,
                category=rule.category,
            )
        except NotFoundError:
            raise _not_found() from None
        return RuleOut.of(stored)

    return await run_blocking(write)


@router.delete(
    "/preferences/rules",
    tags=["preferences"],
    summary="Remove a rule so the next less specific one applies",
    responses={404: {"model": Problem, "description": "Subscriber not stored"}},
)
async def delete_rule(
    caller: Caller,
    gw: Gw,
    channel: Annotated[str, Query(pattern=NAME_PATTERN)] = "*",
    type: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    category: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> Changed:
    def remove() -> Changed:
        try:
            removed = gw.dispatcher.preferences.clear(
                caller.subscriber_id, channel=channel, type=type, category=category
            )
        except NotFoundError:
            raise _not_found() from None
        return Changed(changed=int(removed))

    return await run_blocking(remove)
