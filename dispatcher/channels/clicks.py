"""Click tracking: signed, expiring links through the gateway's ``/c/{token}`` redirect.

A token carries a delivery id, the target URL and an expiry, signed with HMAC-SHA256
under a key derived from ``DISPATCHER_SIGNING_SECRET`` for this purpose only (a token
signed for unsubscribing never verifies here). The gateway verifies it, records the
click against the delivery, and redirects to the signed URL: only URLs that we signed
are ever redirected to, so the redirect cannot be used to send people elsewhere.

With ``DISPATCHER_CLICK_TRACKING=true`` the channels' :attr:`~Channel.link_parts` are
rewritten when a message is composed: ``href`` attributes of HTML parts, bare URLs of
text parts, and parts that are a URL (web push's ``url``). Links to the gateway itself
(unsubscribe, preferences, tracked links) and anything not ``http(s)://`` are left as they are. No
tracking pixel is added.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from html import escape, unescape

from pydantic import SecretStr

from dispatcher.clock import utcnow
from dispatcher.errors import InvalidClickTokenError

_PURPOSE = b"dispatcher:click"
#: Longest target URL we sign (links longer than this are left untracked).
MAX_URL = 2048
#: Longest token we look at.
MAX_TOKEN = 4096


@dataclass(frozen=True)
class ClickTarget:
    """What a verified token says: which delivery's link, to where, until when."""

    delivery_id: int
    url: str
    expires_at: datetime


@lru_cache(maxsize=8)
def _derived_key(raw: str) -> bytes:
    return hmac.new(raw.encode("utf-8"), _PURPOSE, hashlib.sha256).digest()


def _key(secret: SecretStr | str) -> bytes:
    return _derived_key(secret.get_secret_value() if isinstance(secret, SecretStr) else secret)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_click_token(
    secret: SecretStr | str,
    delivery_id: int,
    url: str,
    *,
    ttl: timedelta = timedelta(days=90),
    now: datetime | None = None,
) -> str:
    """A token for ``/c/{token}`` that records a click on ``delivery_id`` and redirects
    to ``url`` until ``now + ttl`` (rounded up to the end of that UTC day)."""
    now = now or utcnow()
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    exp = int((day + timedelta(days=1) + ttl).timestamp())
    body = _b64(json.dumps([delivery_id, url, exp], separators=(",", ":")).encode())
    signature = hmac.new(_key(secret), body.encode("ascii"), hashlib.sha256).digest()
    return f"{body}.{_b64(signature)}"


def verify_click_token(
    token: str, secret: SecretStr | str, *, now: datetime | None = None
) -> ClickTarget:
    """Check ``token``'s signature and expiry.

    Raises:
        InvalidClickTokenError: malformed or forged; ``expired`` is True when it was
            genuine but is past its expiry.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
        raise InvalidClickTokenError("click token is missing or too long")
    body, _, signature = token.partition(".")
    try:
        given = _unb64(signature)
        expected = hmac.new(_key(secret), body.encode("ascii"), hashlib.sha256).digest()
    except (ValueError, UnicodeEncodeError):
        raise InvalidClickTokenError("click token is malformed") from None
    if not hmac.compare_digest(given, expected):
        raise InvalidClickTokenError("click token does not verify")
    try:
        delivery_id, url, exp = json.loads(_unb64(body))
    except (ValueError, TypeError):
        raise InvalidClickTokenError("click token has malformed claims") from None
    if (
        not isinstance(delivery_id, int)
        or not isinstance(url, str)
        or not isinstance(exp, int)
        or not _is_web_url(url)
    ):
        raise InvalidClickTokenError("click token has malformed claims")
    expires_at = datetime.fromtimestamp(exp, UTC)
    if (now or utcnow()) >= expires_at:
        raise InvalidClickTokenError(
            f"click token expired at {expires_at.isoformat()}", expired=True
        )
    return ClickTarget(delivery_id, url, expires_at)


def click_url(public_url: str, token: str) -> str:
    """The gateway URL that records a click and redirects."""
    return f"{public_url.rstrip('/')}/c/{token}"


#: Gateway pages whose links are left as they are.
OWN_PATHS = ("/unsubscribe", "/preferences", "/c/")
_WEB_URL = re.compile(r"https?://[^\s<>\"'\x00-\x1f\x7f]+", re.IGNORECASE)
_HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
#: Trailing characters that end a sentence rather than a URL in plain text.
_TRAILING = ".,;:!?)]}'\""


def _is_web_url(url: str) -> bool:
    return len(url) <= MAX_URL and _WEB_URL.fullmatch(url) is not None


class LinkTracker:
    """Rewrites one message's links to tracked ones (one per distinct URL and delivery)."""

    def __init__(
        self,
        secret: SecretStr | str,
        public_url: str,
        *,
        ttl: timedelta = timedelta(days=90),
        now: datetime | None = None,
    ) -> None:
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        #: The gateway's own pages, never tracked (an app's pages under the same base are).
        self._own = tuple(self.public_url + path for path in OWN_PATHS)
        self.ttl = ttl
        self.now = now

    def _track(self, delivery_id: int, url: str) -> str:
        if not _is_web_url(url) or url.startswith(self._own):
            return url
        token = issue_click_token(self.secret, delivery_id, url, ttl=self.ttl, now=self.now)
        return click_url(self.public_url, token)

    def rewrite(
        self, delivery_id: int, content: Mapping[str, str], link_parts: Mapping[str, str]
    ) -> dict[str, str]:
        """``content`` with the links of ``link_parts`` (part → ``html``, ``text`` or
        ``url``) tracked for ``delivery_id``."""
        out = dict(content)
        for part, kind in link_parts.items():
            value = out.get(part)
            if not value:
                continue
            if kind == "url":
                out[part] = self._track(delivery_id, value.strip())
            elif kind == "html":
                out[part] = _HREF.sub(
                    lambda m: (
                        m.group(1)
                        + m.group(2)
                        + escape(self._track(delivery_id, unescape(m.group(3))), quote=True)
                        + m.group(2)
                    ),
                    value,
                )
            elif kind == "text":
                out[part] = _WEB_URL.sub(lambda m: self._text_link(delivery_id, m.group(0)), value)
        return out

    def _text_link(self, delivery_id: int, found: str) -> str:
        url = found.rstrip(_TRAILING)
        return self._track(delivery_id, url) + found[len(url) :]
