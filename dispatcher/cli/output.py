"""How commands print: text for people, ``--json`` for scripts.

Every command that reports something takes ``--json`` and prints one JSON document on
stdout (warnings and errors go to stderr, so stdout always parses).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    """Add ``--json`` (parameter ``as_json``) to a command."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return str(value)


def emit(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=_default, ensure_ascii=False))
