"""VAPID (RFC 8292): the application server's key pair and the signed tokens push
services ask for.

A push service checks a JWT whose ``aud`` is its own origin, so one token serves every
message to that origin until it nears ``exp``. :class:`VapidSigner` signs once per
origin and reuses the header instead of signing per message, and it builds a fresh
claims dict for every signature: pywebpush's ``webpush()`` fills ``aud`` and ``exp``
into the dict it is given, and a reused dict carries the first origin's ``aud`` to the
next push service, which answers 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from dispatcher.channels.web_push.base64url import b64url_decode, b64url_encode
from dispatcher.clock import utcnow
from dispatcher.errors import ConfigurationError
from dispatcher.settings import PushSettings

#: ``sub`` must let a push service operator reach us (RFC 8292 section 2.1).
_SUBJECT = re.compile(r"^(mailto:[^@\s]+@[^@\s]+|https://[^\s/]+(/\S*)?)$", re.IGNORECASE)


class VapidKey:
    """The application server's P-256 key pair."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ConfigurationError("the VAPID key must be on the P-256 curve")
        self.private_key = private_key

    @classmethod
    def generate(cls) -> VapidKey:
        """A new random key pair."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_text(cls, text: str, *, source: str = "DISPATCHER_PUSH_VAPID_PRIVATE_KEY") -> VapidKey:
        """Parse a PEM key, a base64url raw 32-byte scalar, or base64url DER.

        Raises:
            ConfigurationError: naming ``source``; the key itself is never echoed.
        """
        text = text.strip()
        try:
            if text.startswith("-----BEGIN"):
                key = serialization.load_pem_private_key(text.encode(), password=None)
            else:
                raw = b64url_decode("".join(text.split()))
                if len(raw) == 32:
                    key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
                else:
                    key = serialization.load_der_private_key(raw, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(
                f"{source}: not a VAPID private key (expected PEM, or base64url of the raw "
                f"32-byte key as printed by `dispatcher vapid generate`): {type(exc).__name__}"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigurationError(f"{source}: not an elliptic-curve private key")
        return cls(key)

    @classmethod
    def from_settings(cls, settings: PushSettings) -> VapidKey:
        """The configured key; checks ``vapid_public_key`` matches it when both are set.

        Raises:
            ConfigurationError: no key, an unreadable key, or a mismatched public key.
        """
        text = settings.private_key_text()
        if not text:
            raise ConfigurationError(
                "web push needs DISPATCHER_PUSH_VAPID_PRIVATE_KEY or "
                "DISPATCHER_PUSH_VAPID_PRIVATE_KEY_FILE (run `dispatcher vapid generate`)"
            )
        source = (
            "DISPATCHER_PUSH_VAPID_PRIVATE_KEY"
            if settings.vapid_private_key is not None
            and settings.vapid_private_key.get_secret_value()
            else "DISPATCHER_PUSH_VAPID_PRIVATE_KEY_FILE"
        )
        key = cls.from_text(text, source=source)
        given = (settings.vapid_public_key or "").strip().rstrip("=")
        if given and given != key.public_key_b64:
            # Browsers subscribed with the public key; a different private key gets 403s.
            raise ConfigurationError(
                "DISPATCHER_PUSH_VAPID_PUBLIC_KEY does not belong to the configured "
                "private key; browsers subscribed with it would reject every push"
            )
        return key

    @property
    def private_key_b64(self) -> str:
        """The raw 32-byte private scalar, base64url: what goes in the setting."""
        number = self.private_key.private_numbers().private_value
        return b64url_encode(number.to_bytes(32, "big"))

    @property
    def public_key_bytes(self) -> bytes:
        """The uncompressed public point (65 bytes)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def public_key_b64(self) -> str:
        """The frontend's ``applicationServerKey`` for ``pushManager.subscribe``."""
        return b64url_encode(self.public_key_bytes)

    def private_pem(self) -> str:
        """The private key as PKCS#8 PEM, for a key file."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")


def check_subject(subject: str) -> str:
    """Return ``subject`` if it is a ``mailto:`` or ``https://`` contact.

    Raises:
        ConfigurationError: naming DISPATCHER_PUSH_VAPID_SUBJECT.
    """
    if not _SUBJECT.match(subject):
        raise ConfigurationError(
            f"DISPATCHER_PUSH_VAPID_SUBJECT: {subject!r} must be a mailto: address "
            "or an https:// URL where push services can reach you"
        )
    return subject


def origin_of(endpoint: str) -> str:
    """``https://fcm.googleapis.com/fcm/send/x`` → ``https://fcm.googleapis.com``."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class _Signed:
    header: str
    expires_at: datetime


class VapidSigner:
    """Signs VAPID tokens, one per push-service origin, reused until near expiry.

    Parameters:
        key: The application server's key pair.
        subject: The ``sub`` claim (``mailto:`` or ``https://``).
        lifetime: ``exp`` is this far ahead (push services refuse more than 24 hours).
        renew_before: Sign a new token when the cached one has less than this left,
            so a token never expires while a request carrying it is in flight.
    """

    def __init__(
        self,
        key: VapidKey,
        subject: str,
        *,
        lifetime: timedelta = timedelta(hours=12),
        renew_before: timedelta = timedelta(hours=1),
    ) -> None:
        if not timedelta(0) < renew_before < lifetime <= timedelta(hours=24):
            raise ValueError("need 0 < renew_before < lifetime <= 24 hours")
        self.key = key
        self.subject = check_subject(subject)
        self.lifetime = lifetime
        self.renew_before = renew_before
        self._vapid = Vapid02(key.private_key, conf={"no-strict": True})
        self._cache: dict[str, _Signed] = {}
        #: How many tokens were signed (the cache's misses), for tests and benchmarks.
        self.signatures = 0

    def claims_for(self, origin: str, now: datetime) -> dict[str, str | int]:
        """A new claims dict for ``origin``; never a shared one."""
        return {
            "aud": origin,
            "exp": int((now + self.lifetime).timestamp()),
            "sub": self.subject,
        }

    def authorization(self, endpoint: str) -> str:
        """The ``Authorization`` header value for a request to ``endpoint``."""
        return self.authorization_for_origin(origin_of(endpoint))

    def authorization_for_origin(self, origin: str) -> str:
        """The ``Authorization`` header value for requests to ``origin``."""
        now = utcnow()
        cached = self._cache.get(origin)
        if cached is not None and cached.expires_at - now > self.renew_before:
            return cached.header
        claims = self.claims_for(origin, now)
        header: str = self._vapid.sign(claims)["Authorization"]
        self.signatures += 1
        self._cache[origin] = _Signed(header, now + self.lifetime)
        return header
