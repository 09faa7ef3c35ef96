"""Browser push subscriptions: the devices a subscriber receives web push on.

A subscription is what the browser's ``PushSubscription.toJSON()`` returns::

    {"endpoint": "https://fcm.googleapis.com/fcm/send/...",
     "keys": {"p256dh": "<65-byte P-256 point, base64url>", "auth": "<16 bytes, base64url>"}}

Who owns an endpoint
--------------------
An endpoint is a capability URL: the browser and its push service know it, and the
browser alone holds the matching private key and auth secret. The endpoint is unique
here, and offering one that is stored for somebody else is decided by the keys:

* **The same keys**: the same browser, now logged in as someone else (a shared
  computer, a log-out and log-in). The subscription **moves** to the new subscriber
  instead of notifying both people; the row records who had it
  (``moved_from_subscriber_id``, ``moved_at``), the log says ``push.subscription_moved``
  with both ids, and ``last_success_at`` starts over.
* **Other keys**: not that browser (its auth secret is never shown to anyone), so
  :class:`~dispatcher.errors.PushEndpointTakenError` is raised (the gateway answers 409),
  nothing changes, and the log says ``push.subscription_move_refused``.

The previous owner's pushes never follow the browser: the web push channel picks the
devices of a delivery's subscriber when it sends, not when the event arrives, so the
previous owner's pending, scheduled and retried pushes go to the devices they still
have (none left: ``skipped: no_address``). Only a push already on the wire when the move
commits (at most ``DISPATCHER_PUSH_TIMEOUT``) can still reach the browser.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.arguments import checked_methods
from dispatcher.channels.web_push.base64url import b64url_decode, b64url_encode
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import PushSubscription
from dispatcher.errors import (
    InvalidSubscriptionError,
    NotFoundError,
    PushEndpointTakenError,
    UnknownSubscriberError,
)
from dispatcher.extras import needs
from dispatcher.settings import PushSettings
from dispatcher.subscribers.directory import subscriber_pk
from dispatcher.validation import check_storable, first_unstorable

#: The column's size; push services' endpoints are far shorter.
MAX_ENDPOINT_LENGTH = 2048
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class BrowserSubscription:
    """A validated subscription, keys normalised to unpadded base64url."""

    endpoint: str
    p256dh: str
    auth: str

    @property
    def info(self) -> dict[str, Any]:
        """The ``subscription_info`` shape pywebpush expects."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


@dataclass(frozen=True)
class PushSubscriptionInfo:
    """A stored subscription as the API returns it."""

    id: int
    subscriber_id: str
    endpoint: str
    p256dh: str
    auth: str
    user_agent: str | None
    created_at: datetime
    last_success_at: datetime | None


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_subscription(
    subscription: str | Mapping[str, Any], *, allow_insecure_loopback: bool = False
) -> BrowserSubscription:
    """Validate a ``PushSubscription.toJSON()`` value (a JSON string or a dict).

    Raises:
        InvalidSubscriptionError: saying which field is wrong and how.
    """
    if isinstance(subscription, str | bytes):
        try:
            subscription = json.loads(subscription)
        except ValueError as exc:
            raise InvalidSubscriptionError(f"subscription is not valid JSON: {exc}") from None
    if not isinstance(subscription, Mapping):
        raise InvalidSubscriptionError("subscription must be a JSON object")
    endpoint = subscription.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidSubscriptionError("subscription.endpoint must be a non-empty string")
    _check_endpoint(endpoint, allow_insecure_loopback)
    keys = subscription.get("keys")
    if not isinstance(keys, Mapping):
        raise InvalidSubscriptionError("subscription.keys must be an object with p256dh and auth")
    p256dh = _decode_key(keys.get("p256dh"), "p256dh")
    if len(p256dh) != 65 or p256dh[0] != 0x04:
        raise InvalidSubscriptionError(
            f"subscription.keys.p256dh must be an uncompressed P-256 point (65 bytes "
            f"starting 0x04), got {len(p256dh)} bytes"
        )
    with needs("webpush", "checking a push subscription's keys"):
        from cryptography.hazmat.primitives.asymmetric import ec
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise InvalidSubscriptionError(
            "subscription.keys.p256dh is not a point on the P-256 curve"
        ) from None
    auth = _decode_key(keys.get("auth"), "auth")
    if len(auth) != 16:
        raise InvalidSubscriptionError(
            f"subscription.keys.auth must be a 16-byte secret, got {len(auth)} bytes"
        )
    return BrowserSubscription(endpoint, b64url_encode(p256dh), b64url_encode(auth))


def _check_endpoint(endpoint: str, allow_insecure_loopback: bool) -> None:
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        raise InvalidSubscriptionError(
            f"subscription.endpoint is longer than {MAX_ENDPOINT_LENGTH} characters"
        )
    if any(c.isspace() or ord(c) < 32 for c in endpoint):
        raise InvalidSubscriptionError("subscription.endpoint contains whitespace")
    if first_unstorable(endpoint) is not None:  # a lone surrogate: no UTF-8 for it
        raise InvalidSubscriptionError("subscription.endpoint has a character no store can hold")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidSubscriptionError(f"subscription.endpoint is not a URL: {exc}") from None
    if not host:
        raise InvalidSubscriptionError("subscription.endpoint has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidSubscriptionError("subscription.endpoint must not carry credentials")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and allow_insecure_loopback and _is_loopback(host):
        return
    hint = (
        " (http:// is allowed only on 127.0.0.1/localhost, and only with "
        "DISPATCHER_PUSH_ALLOW_INSECURE_LOOPBACK=true)"
        if parts.scheme == "http"
        else ""
    )
    raise InvalidSubscriptionError(f"subscription.endpoint must be an https:// URL{hint}")


def _decode_key(value: object, name: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise InvalidSubscriptionError(f"subscription.keys.{name} must be a non-empty string")
    try:
        return b64url_decode(value)
    except ValueError as exc:
        raise InvalidSubscriptionError(f"subscription.keys.{name} is {exc}") from None


@checked_methods
class PushSubscriptions:
    """Add, list and remove a subscriber's browser push subscriptions."""

    def __init__(self, store: Store, settings: PushSettings) -> None:
        self.store = store
        self.settings = settings

    def add(
        self,
        subscriber_id: str,
        subscription: str | Mapping[str, Any],
        *,
        user_agent: str | None = None,
    ) -> PushSubscriptionInfo:
        """Store a browser subscription for ``subscriber_id``.

        The same endpoint again updates its keys; an endpoint stored for another
        subscriber moves to this one when the keys are the same (the same browser,
        logged in as someone else; see the module's docstring).

        Raises:
            InvalidSubscriptionError: malformed; nothing is stored.
            UnstorableValueError: ``user_agent`` holds a NUL or a lone surrogate.
            PushEndpointTakenError: the endpoint is another subscriber's, with other
                keys; nothing changes.
            UnknownSubscriberError: no such subscriber; nothing is stored.
        """
        parsed = parse_subscription(
            subscription, allow_insecure_loopback=self.settings.allow_insecure_loopback
        )
        if user_agent is not None:
            user_agent = check_storable(user_agent, "user_agent")[:512]
        try:
            return self._add(subscriber_id, parsed, user_agent)
        except IntegrityError:
            # Another request stored the same endpoint between our read and write; the
            # second try finds it and updates it.
            return self._add(subscriber_id, parsed, user_agent)

    def _add(
        self, subscriber_id: str, parsed: BrowserSubscription, user_agent: str | None
    ) -> PushSubscriptionInfo:
        with self.store.session(write=True) as session:
            owner = _subscriber_pk(session, subscriber_id)
            row = session.scalar(
                select(PushSubscription).where(PushSubscription.endpoint == parsed.endpoint)
            )
            if row is None:
                row = PushSubscription(endpoint=parsed.endpoint)
                session.add(row)
            elif row.subscriber_id != owner:
                _move(row, owner, parsed)
            elif row.p256dh != parsed.p256dh:
                row.last_success_at = None  # new keys: no success yet
            row.subscriber_id = owner
            row.p256dh = parsed.p256dh
            row.auth = parsed.auth
            if user_agent is not None or row.user_agent is None:
                row.user_agent = user_agent
            session.flush()
            return _info(row, subscriber_id)

    def list(self, subscriber_id: str) -> list[PushSubscriptionInfo]:
        """The subscriber's subscriptions, oldest first.

        Raises:
            UnknownSubscriberError: no such subscriber.
        """
        with self.store.session() as session:
            owner = _subscriber_pk(session, subscriber_id)
            rows = session.scalars(
                select(PushSubscription)
                .where(PushSubscription.subscriber_id == owner)
                .order_by(PushSubscription.id)
            )
            return [_info(r, subscriber_id) for r in rows]

    def remove(self, subscriber_id: str, endpoint: str) -> bool:
        """Delete the subscriber's subscription with ``endpoint``; False if there was none.

        Raises:
            UnknownSubscriberError: no such subscriber.
        """
        with self.store.session(write=True) as session:
            owner = _subscriber_pk(session, subscriber_id)
            if any(ord(c) < 32 for c in endpoint) or first_unstorable(endpoint) is not None:
                # Stored endpoints never hold control characters or lone surrogates
                # (``add`` refuses them), and the stores refuse them as parameters.
                return False
            result = session.execute(
                delete(PushSubscription)
                .where(PushSubscription.subscriber_id == owner)
                .where(PushSubscription.endpoint == endpoint)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]


def _move(row: PushSubscription, owner: int, parsed: BrowserSubscription) -> None:
    """Hand ``row`` to ``owner`` if the same browser offers it, else refuse."""
    # Constant-time: the auth secret is the proof of being that browser.
    same_keys = hmac.compare_digest(row.p256dh, parsed.p256dh) & hmac.compare_digest(
        row.auth, parsed.auth
    )
    if not same_keys:
        log.warning(
            "push.subscription_move_refused",
            push_subscription_id=row.id,
            owner=row.subscriber_id,
            requested_by=owner,
            reason="keys_differ",
        )
        raise PushEndpointTakenError(
            "this push endpoint is registered to another subscriber with other keys; "
            "subscribe again in this browser to get an endpoint of its own"
        )
    log.info(
        "push.subscription_moved",
        push_subscription_id=row.id,
        moved_from=row.subscriber_id,
        moved_to=owner,
    )
    row.moved_from_subscriber_id = row.subscriber_id
    row.moved_at = utcnow()
    row.last_success_at = None  # a new owner: no success yet


def _subscriber_pk(session: Session, subscriber_id: str) -> int:
    try:
        return subscriber_pk(session, subscriber_id)
    except NotFoundError:  # a bad request for this API (400), not a missing resource
        raise UnknownSubscriberError([subscriber_id]) from None


def _info(row: PushSubscription, subscriber_id: str) -> PushSubscriptionInfo:
    return PushSubscriptionInfo(
        id=row.id,
        subscriber_id=subscriber_id,
        endpoint=row.endpoint,
        p256dh=row.p256dh,
        auth=row.auth,
        user_agent=row.user_agent,
        created_at=row.created_at,
        last_success_at=row.last_success_at,
    )
