"""Keep tokens out of logs.

uvicorn logs request paths (``uvicorn.access``) and WebSocket paths (``uvicorn.error``:
``"WebSocket /ws/notifications/<token>/" [accepted]``). This filter rewrites those
records before any handler sees them: the path segment after ``/ws/notifications/``
(and after ``/unsubscribe/``), and ``token=`` / ``access_token=`` query values, become
``***``.
"""

from __future__ import annotations

import logging
import re

_PATTERNS = (
    (re.compile(r"(/ws/notifications/)[^/\s?\"']+"), r"\1***"),
    # One-click unsubscribe links carry a signed token in the path.
    (re.compile(r"(/unsubscribe/)[^/\s?\"']+"), r"\1***"),
    # Tracked links (/c/<signed token>) name a delivery and its target.
    (re.compile(r"(/c/)[^/\s?\"']+"), r"\1***"),
    (re.compile(r"((?:access_)?token=)[^&\s\"']+"), r"\1***"),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1***"),
)

#: Loggers whose records may carry a path or header.
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "dispatcher", "fastapi")


def redact(text: str) -> str:
    """``text`` with every token-looking part replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class TokenRedactingFilter(logging.Filter):
    """A logging filter that redacts tokens in the message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


_FILTER = TokenRedactingFilter()


def install() -> None:
    """Attach the filter to uvicorn's and our loggers (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
