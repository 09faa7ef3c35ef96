"""The one clock all policy code reads.

Everything that depends on "now" calls :func:`utcnow`, so freezegun (or a test that
assigns :data:`dispatcher.clock.source`) moves all of it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


def _system_now() -> datetime:
    return datetime.now(UTC)


#: Replaceable source of the current instant; must return an aware UTC datetime.
source: Callable[[], datetime] = _system_now


def utcnow() -> datetime:
    """Return the current instant as an aware UTC datetime."""
    now = source()
    if now.tzinfo is None:  # freezegun hands out naive datetimes for datetime.now(UTC)
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC)
