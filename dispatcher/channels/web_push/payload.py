"""What a web push carries: the JSON a service worker shows, and the headers around it.

Push services accept at most 4,096 bytes of ``aes128gcm`` body. The header (86 bytes
with a 65-byte key id), one padding delimiter and the 16-byte tag leave 3,993 bytes of
plaintext, so the JSON is kept under that by shortening the body (then the title) on a
character boundary, never inside a UTF-8 sequence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dispatcher.enums import Priority
from dispatcher.errors import PermanentDeliveryError

#: Largest plaintext that still encrypts to a 4,096-byte ``aes128gcm`` body.
MAX_PLAINTEXT_BYTES = 3993
ELLIPSIS = "…"

#: RFC 8030 section 5.3. ``urgent`` cannot go higher than ``high``; ``low`` stays ``low``
#: (``very-low`` is for pushes the person would not miss, see :func:`urgency`).
URGENCY = {
    Priority.LOW: "low",
    Priority.MEDIUM: "normal",
    Priority.HIGH: "high",
    Priority.URGENT: "high",
}


def urgency(priority: Priority, *, realtime: bool = True) -> str:
    """The ``Urgency`` header; ``very-low`` when policy said "store, do not ping"."""
    if not realtime:
        return "very-low"
    return URGENCY[priority]


def topic(notification_id: int) -> str:
    """The ``Topic`` header: stable per notification, so a resend replaces the pending
    copy on the push service. At most 32 base64url characters (RFC 8030 section 5.4)."""
    value = f"notification-{notification_id}"
    assert len(value) <= 32, "notification ids have at most 19 digits"
    return value


def build_payload(
    content: Mapping[str, str],
    *,
    notification_id: int,
    type_name: str,
    priority: Priority,
    limit: int = MAX_PLAINTEXT_BYTES,
) -> bytes:
    """The UTF-8 JSON for the service worker, at most ``limit`` bytes.

    ``tag`` defaults to one per notification: the browser then replaces a shown
    notification when the same one arrives twice instead of stacking copies. ``icon``
    is present only when a template renders one (``null`` would be fetched as a URL).

    Raises:
        PermanentDeliveryError: ``payload_too_large`` if even an empty body and a
            shortened title do not fit (an enormous URL).
    """
    doc: dict[str, Any] = {
        "title": content.get("title", ""),
        "body": content.get("body", ""),
        "url": content.get("url") or "/",
        "tag": content.get("tag") or topic(notification_id),
        "notification_id": notification_id,
        "type": type_name,
        "priority": priority.value,
    }
    if content.get("icon"):
        doc["icon"] = content["icon"]
    encoded = _dump(doc)
    for field in ("body", "title"):
        if len(encoded) <= limit:
            return encoded
        doc[field] = _shorten(doc[field], len(encoded) - limit)
        encoded = _dump(doc)
        while len(encoded) > limit and doc[field]:
            # JSON escapes can make a character cost more than its UTF-8 bytes.
            doc[field] = _shorten(doc[field], len(encoded) - limit)
            encoded = _dump(doc)
    if len(encoded) > limit:
        raise PermanentDeliveryError(
            f"push payload is {len(encoded)} bytes even with an empty body; the limit is "
            f"{limit} (is the url template too long?)",
            reason="payload_too_large",
        )
    return encoded


def _dump(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _shorten(text: str, excess: int) -> str:
    """``text`` with at least ``excess`` bytes of UTF-8 removed and an ellipsis added."""
    if not text:
        return text
    data = text.removesuffix(ELLIPSIS).encode("utf-8")
    keep = len(data) - excess - len(ELLIPSIS.encode("utf-8"))
    if keep <= 0:
        return ""
    # Decoding with "ignore" drops a multi-byte sequence cut in half, never a whole one.
    kept = data[:keep].decode("utf-8", errors="ignore").rstrip()
    return kept + ELLIPSIS if kept else ""
