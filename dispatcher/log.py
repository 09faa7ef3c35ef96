"""Structured log lines: ``event_name key=value ...`` with the ids that matter.

Never pass secrets, tokens, addresses' passwords or full message bodies here.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("dispatcher")


def kv(**fields: Any) -> str:
    """Render fields as ``key=value`` pairs, quoting values that contain spaces."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if not text or any(c.isspace() or c in '"=' for c in text):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def log(level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with structured fields (also attached as ``record.fields``)."""
    if logger.isEnabledFor(level):
        logger.log(level, "%s %s", event, kv(**fields), extra={"fields": fields})


def info(event: str, **fields: Any) -> None:
    log(logging.INFO, event, **fields)


def warning(event: str, **fields: Any) -> None:
    log(logging.WARNING, event, **fields)


def error(event: str, **fields: Any) -> None:
    log(logging.ERROR, event, **fields)
