"""``/api/push/``: the caller's browser push subscriptions and the VAPID public key.

A service worker subscribes with the public key from ``GET /api/push/vapid-public-key``
and posts ``PushSubscription.toJSON()`` here. A malformed subscription answers 400 with
the reason (:class:`~dispatcher.errors.InvalidSubscriptionError`); another subscriber's
endpoint with other keys answers 409 (:class:`~dispatcher.errors.PushEndpointTakenError`,
see :mod:`dispatcher.push_subscriptions` for the rule).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.channels.web_push.subscriptions import PushSubscriptionInfo
from dispatcher.channels.web_push.vapid import VapidKey
from dispatcher.errors import PushEndpointTakenError, UnknownSubscriberError
from dispatcher.gateway.rest import COMMON_RESPONSES, Caller, Gw, run_blocking
from dispatcher.gateway.schemas import Problem

router = APIRouter(prefix="/api/push", responses=COMMON_RESPONSES, tags=["push"])


class SubscriptionKeys(BaseModel):
    p256dh: str = Field(max_length=200)
    auth: str = Field(max_length=100)


class SubscriptionIn(BaseModel):
    """What ``PushSubscription.toJSON()`` gives in the browser."""

    model_config = ConfigDict(extra="ignore")

    endpoint: str = Field(max_length=2048)
    keys: SubscriptionKeys
    expirationTime: int | None = None


class SubscriptionOut(BaseModel):
    """A stored device (its keys are not sent back)."""

    id: int
    endpoint: str
    user_agent: str | None
    created_at: datetime
    last_success_at: datetime | None

    @classmethod
    def of(cls, info: PushSubscriptionInfo) -> SubscriptionOut:
        return cls(
            id=info.id,
            endpoint=info.endpoint,
            user_agent=info.user_agent,
            created_at=info.created_at,
            last_success_at=info.last_success_at,
        )


class PublicKey(BaseModel):
    """The ``applicationServerKey`` for ``pushManager.subscribe()``."""

    public_key: str


@router.get(
    "/vapid-public-key",
    summary="The VAPID public key for subscribing",
    responses={404: {"description": "Web push is not configured"}},
)
async def vapid_public_key(caller: Caller, gw: Gw) -> PublicKey:
    push = gw.dispatcher.settings.push
    if not push.private_key_text():
        raise HTTPException(404, "web push is not configured")
    return PublicKey(public_key=VapidKey.from_settings(push).public_key_b64)


@router.get("/subscriptions", summary="My devices")
async def list_subscriptions(caller: Caller, gw: Gw) -> list[SubscriptionOut]:
    def fetch() -> list[PushSubscriptionInfo]:
        try:
            return gw.dispatcher.push_subscriptions.list(caller.subscriber_id)
        except UnknownSubscriberError:  # not stored by the app yet: no devices
            return []

    return [SubscriptionOut.of(r) for r in await run_blocking(fetch)]


@router.post(
    "/subscriptions",
    status_code=201,
    summary="Add this browser",
    responses={409: {"model": Problem, "description": "Another subscriber's endpoint"}},
)
async def add_subscription(
    caller: Caller,
    gw: Gw,
    subscription: SubscriptionIn,
    user_agent: Annotated[str | None, Header(max_length=512)] = None,
) -> SubscriptionOut:
    """Store the subscription for the caller.

    An endpoint stored for someone else moves to the caller only with the same keys
    (the same browser, logged in as someone else); with other keys it is refused (409).
    """
    data = subscription.model_dump()
    try:
        info = await run_blocking(
            lambda: gw.dispatcher.push_subscriptions.add(
                caller.subscriber_id, data, user_agent=user_agent
            )
        )
    except PushEndpointTakenError as exc:
        raise HTTPException(409, str(exc)) from None
    return SubscriptionOut.of(info)


@router.delete(
    "/subscriptions",
    status_code=204,
    summary="Remove a device",
    responses={404: {"description": "No such subscription of yours"}},
)
async def remove_subscription(
    caller: Caller, gw: Gw, endpoint: Annotated[str, Query(max_length=2048)]
) -> Response:
    removed = await run_blocking(
        lambda: gw.dispatcher.push_subscriptions.remove(caller.subscriber_id, endpoint)
    )
    if not removed:
        raise HTTPException(404, "not found")
    return Response(status_code=204)
