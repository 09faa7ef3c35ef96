"""Quiet hours at send time: hold push and email until the window ends.

In-app is still stored (the inbox is silent by nature) but without a real-time ping;
every other channel is deferred to the end of the quiet period with reason
``quiet_hours``. ``urgent`` deliveries bypass quiet hours.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.enums import Priority, Reason
from dispatcher.policy import Candidate, Decision, Policy
from dispatcher.quiet_hours import QuietWindow, describe_until, quiet_until, windows_for

#: Channels that store silently instead of waiting.
SILENT_CHANNELS = frozenset({"in_app"})


class QuietHoursPolicy(Policy):
    """Defers (or silences, for in-app) deliveries inside the subscriber's quiet hours."""

    name = "quiet_hours"

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        relevant = [c for c in candidates if c.priority is not Priority.URGENT]
        if not relevant:
            return {}
        windows = windows_for(session, (c.recipient.id for c in relevant))
        decisions: dict[int, Decision] = {}
        # Many subscribers share a zone and the same windows: compute each pair once.
        answers: dict[tuple[str, tuple[QuietWindow, ...]], datetime | None] = {}
        for c in relevant:
            mine = windows.get(c.recipient.id)
            if not mine:
                continue
            zone = _zone(c.recipient.timezone)
            key = (zone.key, tuple(mine))
            if key not in answers:
                answers[key] = quiet_until(mine, zone, now)
            until = answers[key]
            if until is None:
                continue
            detail = describe_until(until, zone, now)
            if c.channel in SILENT_CHANNELS:
                decisions[c.delivery_id] = Decision.send(realtime=False, detail=detail)
            else:
                decisions[c.delivery_id] = Decision.defer(until, Reason.QUIET_HOURS, detail)
        return decisions


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (KeyError, ValueError):  # validated on upsert; an old row may predate that
        log.warning("quiet_hours.bad_zone", timezone=name)
        return ZoneInfo("UTC")
