"""Unpadded base64url, the form browsers and push services use for keys.

Kept apart from :mod:`~dispatcher.channels.web_push.vapid` so that reading a browser's
subscription needs no optional dependency.
"""

from __future__ import annotations

import base64
import binascii
import re


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url, the form browsers and push services use for keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raise ValueError on anything else."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not base64url (only A-Z a-z 0-9 - _ are allowed)")
    stripped = text.rstrip("=")
    if len(stripped) % 4 == 1:
        raise ValueError("not base64url (impossible length)")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except binascii.Error as exc:  # pragma: no cover - the pattern above rules it out
        raise ValueError(f"not base64url ({exc})") from None
