"""Structured log lines: ``event_name key=value ...`` with the ids that matter.

Never pass secrets, tokens, addresses' passwords or full message bodies here.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``event`` and our ids.

    Records from :func:`log` carry their fields as keys (``delivery_id``, ``event_id``…);
    anyone else's record (Celery, uvicorn) puts its text in ``message``.
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and record.args and isinstance(record.args, tuple):
            doc["event"] = str(record.args[0])
            for key, value in fields.items():
                if value is not None and key not in doc:
                    doc[key] = value if isinstance(value, bool | int | float | str) else str(value)
        else:
            doc["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = record.exc_info[0].__name__
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def configure(log_format: str, *, loggers: tuple[str, ...] = ("",)) -> None:
    """Switch every handler of ``loggers`` (the root by default) to ``log_format``
    (``json``: :class:`JsonFormatter`; ``text`` leaves them as they are). When the root
    has no handler at all, ours get one on stderr, so ``dispatcher`` lines are not lost."""
    if log_format != "json":
        return
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers and not logger.handlers:
        logger.addHandler(logging.StreamHandler())
        logger.setLevel(logging.INFO)
    for name in (*loggers, "dispatcher"):
        for each in logging.getLogger(name).handlers:
            each.setFormatter(formatter)
