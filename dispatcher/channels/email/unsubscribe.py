"""One-click unsubscribe tokens (RFC 8058): issued for links, verified when followed.

A token is an HS256 JWT naming a subscriber, a channel and either a type or a
category, with an expiry. It is signed with a key derived from
``DISPATCHER_SIGNING_SECRET`` for this purpose only, so a token signed for anything
else never verifies here.

The expiry is rounded to the end of a UTC day, so every token issued for the same
subscriber and type on one day is the same string: the link in an email's body and its
``List-Unsubscribe`` header match.

The gateway serves the URL: ``GET`` shows a confirmation page and must not change
anything (mail scanners follow links); ``POST`` with ``List-Unsubscribe=One-Click``
calls ``Dispatcher.unsubscribe``, which verifies the token here and sets the preference.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import jwt
from pydantic import SecretStr

from dispatcher.clock import utcnow
from dispatcher.errors import InvalidUnsubscribeTokenError

_AUDIENCE = "dispatcher:unsubscribe"
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class UnsubscribeToken:
    """What a verified token asks for."""

    subscriber_id: str
    channel: str
    type: str | None
    category: str | None
    expires_at: datetime


@lru_cache(maxsize=8)
def _derived_key(raw: str) -> bytes:
    return hmac.new(raw.encode("utf-8"), _AUDIENCE.encode("ascii"), hashlib.sha256).digest()


def _key(secret: SecretStr | str) -> bytes:
    return _derived_key(secret.get_secret_value() if isinstance(secret, SecretStr) else secret)


def issue_unsubscribe_token(
    secret: SecretStr | str,
    subscriber_id: str,
    *,
    type: str | None = None,
    category: str | None = None,
    channel: str = "email",
    ttl: timedelta = timedelta(days=60),
    now: datetime | None = None,
) -> str:
    """A signed token that turns ``channel`` off for ``type`` (or ``category``).

    It stays valid at least ``ttl`` and at most ``ttl`` plus one day.
    """
    if (type is None) == (category is None):
        raise ValueError("give exactly one of type= or category=")
    now = now or utcnow()
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    expires = day + timedelta(days=1) + ttl
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return _signed(raw, subscriber_id, type, category, channel, int(expires.timestamp()))


@lru_cache(maxsize=16384)
def _signed(
    secret: str, subscriber_id: str, type: str | None, category: str | None, channel: str, exp: int
) -> str:
    # Cached: a batch asks for each link twice (template links, List-Unsubscribe header).
    # Signed by hand (a standard HS256 JWT, read back by PyJWT) at a fraction of
    # jwt.encode's cost, which showed up in the email benchmark.
    claims: dict[str, Any] = {"aud": _AUDIENCE, "sub": subscriber_id, "ch": channel}
    if type is not None:
        claims["typ"] = type
    else:
        claims["cat"] = category
    claims["exp"] = exp
    signing_input = _HEADER + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(_key(secret), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64(signature)).decode("ascii")


_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def verify_unsubscribe_token(
    token: str, secret: SecretStr | str, *, now: datetime | None = None
) -> UnsubscribeToken:
    """Check the signature and expiry of ``token`` and say what it asks for.

    Raises:
        InvalidUnsubscribeTokenError: malformed, signed with another key, for another
            purpose, or expired (``expired`` is then True).
    """
    if not isinstance(token, str) or not token or len(token) > 2048:
        raise InvalidUnsubscribeTokenError("unsubscribe token is missing or too long")
    if not token.isascii():
        raise InvalidUnsubscribeTokenError("unsubscribe token is not valid: not ASCII")
    try:
        # Expiry is checked below against dispatcher.clock, not the wall clock.
        claims = jwt.decode(
            token,
            _key(secret),
            algorithms=[_ALGORITHM],
            audience=_AUDIENCE,
            options={"verify_exp": False, "require": ["exp", "sub", "aud", "ch"]},
        )
    except jwt.InvalidTokenError as exc:
        raise InvalidUnsubscribeTokenError(
            f"unsubscribe token is not valid: {type_name(exc)}"
        ) from None
    type_ = claims.get("typ")
    category = claims.get("cat")
    subscriber = claims.get("sub")
    channel = claims.get("ch")
    exp = claims.get("exp")
    if (
        not isinstance(subscriber, str)
        or not isinstance(channel, str)
        or not isinstance(exp, int)
        or (type_ is None) == (category is None)
        or not isinstance(type_ or category, str)
    ):
        raise InvalidUnsubscribeTokenError("unsubscribe token has malformed claims")
    expires_at = datetime.fromtimestamp(exp, UTC)
    if (now or utcnow()) >= expires_at:
        raise InvalidUnsubscribeTokenError(
            f"unsubscribe token expired at {expires_at.isoformat()}", expired=True
        )
    return UnsubscribeToken(subscriber, channel, type_, category, expires_at)


def type_name(exc: BaseException) -> str:
    """A short, secret-free description of why a JWT did not verify."""
    return type(exc).__name__.removesuffix("Error") or "invalid"


def unsubscribe_url(public_url: str, token: str) -> str:
    """The one-click URL the gateway serves for ``token``."""
    return f"{public_url.rstrip('/')}/unsubscribe?token={quote(token, safe='')}"


def preferences_url(public_url: str) -> str:
    """Where a subscriber manages all their notification settings."""
    return f"{public_url.rstrip('/')}/preferences"
