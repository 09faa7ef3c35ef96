"""Who is calling: JWT bearer tokens issued by the backend app.

The algorithm is pinned in settings (never read from the token header), ``exp`` is
required and ``sub`` names the subscriber by external id. REST reads
``Authorization: Bearer``; WebSockets read the token from the path, a ``token``
query parameter, or the ``bearer, <token>`` subprotocol pair. Failures carry no detail
that would help an attacker; the reason is logged (never the token).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import jwt

from dispatcher import log
from dispatcher.errors import AuthenticationError, ConfigurationError
from dispatcher.settings import GatewaySettings

#: Algorithms that verify with a shared secret; the others need a public key.
SYMMETRIC = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"})
#: The subprotocol a browser offers next to its token: ``new WebSocket(url, ["bearer", t])``.
BEARER_SUBPROTOCOL = "bearer"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    #: The subscriber's external id (the token's ``sub``).
    subscriber_id: str
    #: A short digest of the token: a rate-limit key that never reveals the token.
    token_key: str
    #: The token's scopes (its ``scope`` claim, space-separated, or a ``scopes`` list).
    scopes: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes


class TokenVerifier:
    """Checks tokens against the gateway settings.

    Raises:
        ConfigurationError: at construction, when the key for the pinned algorithm is missing.
    """

    def __init__(self, settings: GatewaySettings) -> None:
        algorithm = settings.jwt_algorithm
        self.algorithm = algorithm
        self.audience = settings.jwt_audience
        self.issuer = settings.jwt_issuer
        self._key: Any
        if algorithm in SYMMETRIC:
            if settings.jwt_secret is None or not settings.jwt_secret.get_secret_value():
                raise ConfigurationError(
                    f"DISPATCHER_GATEWAY_JWT_SECRET is required for {algorithm} tokens"
                )
            self._key = settings.jwt_secret.get_secret_value()
        elif algorithm in ASYMMETRIC:
            if not settings.jwt_public_key:
                raise ConfigurationError(
                    f"DISPATCHER_GATEWAY_JWT_PUBLIC_KEY is required for {algorithm} tokens"
                )
            self._key = settings.jwt_public_key
        else:
            raise ConfigurationError(
                f"DISPATCHER_GATEWAY_JWT_ALGORITHM: {algorithm!r} is not supported; use one of "
                + ", ".join(sorted(SYMMETRIC | ASYMMETRIC))
            )

    def verify(self, token: str | None) -> Principal:
        """The caller named by ``token``.

        Raises:
            AuthenticationError: missing, malformed, badly signed, expired, or for
                another audience or issuer.
        """
        if not token:
            raise AuthenticationError("missing token")
        options: dict[str, Any] = {"require": ["exp", "sub"]}
        if self.audience is None:
            options["verify_aud"] = False
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.PyJWTError as exc:
            # The exception class says why (expired, bad signature...) without the token.
            log.info("gateway.auth_failed", reason=type(exc).__name__)
            raise AuthenticationError("invalid token") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255 or "\x00" in subject:
            log.info("gateway.auth_failed", reason="bad_sub")
            raise AuthenticationError("invalid token")
        return Principal(subject, token_digest(token), _scopes(claims))


#: The scope a token needs for the admin routes (campaigns).
ADMIN_SCOPE = "dispatcher:admin"


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    raw = claims.get("scope", claims.get("scopes"))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(s for s in raw if isinstance(s, str))
    return frozenset()


def require_admin(principal: Principal) -> Principal:
    """``principal`` if its token carries :data:`ADMIN_SCOPE`.

    Raises:
        AuthenticationError: it does not (the gateway answers 403).
    """
    if not principal.is_admin:
        log.info("gateway.admin_refused", subscriber_id=principal.subscriber_id)
        raise AuthenticationError("admin scope required")
    return principal


def token_digest(token: str) -> str:
    """A stable, non-reversible key for a token (rate limits, logs)."""
    return hashlib.sha256(token.encode()).hexdigest()[:24]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if it is one."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def subprotocol_token(offered: list[str]) -> str | None:
    """The token a browser passed as ``["bearer", token]`` subprotocols, if any."""
    if BEARER_SUBPROTOCOL not in offered:
        return None
    others = [p for p in offered if p != BEARER_SUBPROTOCOL]
    return others[0] if len(others) == 1 else None
