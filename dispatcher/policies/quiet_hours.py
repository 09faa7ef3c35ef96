"""Quiet hours: windows of local time during which push and email wait.

A window is a local start and end time plus the local weekdays it *starts* on
(Monday = 0); ``start > end`` crosses midnight (22:00-07:00 starting Friday ends
Saturday 07:00). ``start == end`` is refused: say ``00:00``-``23:59`` if you mean it.

How wall-clock times become instants in the subscriber's IANA zone (``zoneinfo``):

* an ordinary time is the one instant it names;
* a time inside a **gap** (spring forward: 02:30 on 2026-03-29 in Europe/Madrid never
  happens) is the first instant after the gap, i.e. the transition itself (03:00 CEST);
* a time inside a **fold** (fall back: 02:30 on 2026-10-25 happens twice) is its
  **first** occurrence (``fold=0``), for starts and ends alike.

A window that DST makes empty (02:00-02:30 inside a one-hour gap) is skipped that day.
Windows that touch or overlap are merged: :func:`quiet_until` returns the first
instant at which the subscriber is in no window at all, so a deferred delivery is never
released inside a window and never held past the end of the quiet period. Windows that
cover the whole week are refused when set (nothing could ever be delivered); if a chain
of windows still reaches :data:`MAX_QUIET` (old rows, DST quirks), the subscriber is
treated as not quiet, so nothing waits forever.

Quiet hours at send time: hold push and email until the window ends.

In-app is still stored (the inbox is silent by nature) but without a real-time ping;
every other channel is deferred to the end of the quiet period with reason
``quiet_hours``. ``urgent`` deliveries bypass quiet hours.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.arguments import checked_methods
from dispatcher.db.engine import Store
from dispatcher.db.models import QuietHoursWindow, table
from dispatcher.enums import Priority, Reason
from dispatcher.errors import ValidationError
from dispatcher.policies.base import Candidate, Decision, Policy
from dispatcher.subscribers.directory import subscriber_pk

#: The longest a merged quiet period may hold a delivery.
MAX_QUIET = timedelta(days=7)
ALL_DAYS = "0123456"
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class QuietWindow:
    """One window: local ``start``-``end`` on the weekdays in ``days`` (digits, Monday=0)."""

    start: time
    end: time
    days: str = ALL_DAYS

    def describe(self) -> str:
        """``22:00-07:00 mon,tue,wed`` (``every day`` when all seven)."""
        when = (
            "every day"
            if self.days == ALL_DAYS
            else ",".join(_DAY_NAMES[int(d)] for d in self.days)
        )
        return f"{self.start:%H:%M}-{self.end:%H:%M} {when}"

    def intervals(self, zone: ZoneInfo, first: date, last: date) -> list[tuple[datetime, datetime]]:
        """UTC ``[start, end)`` of the occurrences starting on local dates first..last."""
        out = []
        day = first
        while day <= last:
            if str(day.weekday()) in self.days:
                end_day = day + timedelta(days=1) if self.end < self.start else day
                start = local_instant(day, self.start, zone)
                end = local_instant(end_day, self.end, zone)
                if start < end:
                    out.append((start, end))
            day += timedelta(days=1)
        return out


def local_instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of local ``day wall`` in ``zone``: gaps move forward to the
    transition, folds take the first occurrence (see the module docstring)."""
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == naive:
        return instant  # exists (fold=0 is the first occurrence in a fold)
    # In a gap: fold=0 reads the wall time with the offset from before the transition
    # (too late), fold=1 with the one after (too early); the transition lies between.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = instant
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(zone).replace(tzinfo=None) >= naive:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0) if high.microsecond else high


def quiet_until(windows: Sequence[QuietWindow], zone: ZoneInfo, now: datetime) -> datetime | None:
    """When the quiet period around ``now`` ends (UTC), or None if ``now`` is not quiet."""
    if not windows:
        return None
    now = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    # Most calls are outside every window: check the occurrences that could hold ``now``
    # (those starting yesterday or today, local) before building the whole horizon.
    near = [span for w in windows for span in w.intervals(zone, today - timedelta(days=1), today)]
    if not any(start <= now < stop for start, stop in near):
        return None
    horizon = MAX_QUIET.days + 2
    spans = sorted(
        span
        for w in windows
        for span in w.intervals(zone, today - timedelta(days=2), today + timedelta(days=horizon))
    )
    end: datetime | None = None
    for start, stop in spans:
        if end is None:
            if start <= now < stop:
                end = stop
        elif start <= end:
            end = max(end, stop)
        else:
            break
    if end is None or end >= now + MAX_QUIET:
        return None
    return end


def covers_whole_week(windows: Sequence[QuietWindow]) -> bool:
    """Whether the windows, read on the wall clock, leave no minute of the week free."""
    week = 7 * 24 * 60
    covered = bytearray(week)
    for w in windows:
        start = w.start.hour * 60 + w.start.minute
        length = (w.end.hour * 60 + w.end.minute - start) % (24 * 60)
        for day in w.days:
            first = int(day) * 24 * 60 + start
            for minute in range(first, first + length):
                covered[minute % week] = 1
    return all(covered)


def describe_until(until: datetime, zone: ZoneInfo, now: datetime) -> str:
    """``until 07:00 Europe/Madrid (05:00 UTC)``, with dates when not within a day."""
    local = until.astimezone(zone)
    utc = until.astimezone(UTC)
    if until - now < timedelta(hours=24):
        return f"until {local:%H:%M} {zone.key} ({utc:%H:%M} UTC)"
    return f"until {local:%Y-%m-%d %H:%M} {zone.key} ({utc:%Y-%m-%d %H:%M} UTC)"


def parse_time(value: str | time, what: str) -> time:
    """``"22:00"`` or a :class:`datetime.time` (seconds dropped are refused)."""
    if isinstance(value, time):
        if value.second or value.microsecond or value.tzinfo is not None:
            raise ValidationError(f"quiet hours {what} {value!r}: give whole minutes, no zone")
        return value
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValidationError(f"quiet hours {what} {value!r}: use HH:MM from 00:00 to 23:59")
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def parse_days(value: str | Iterable[int | str] | None) -> str:
    """Weekdays as a digit string: ``None`` (every day), ``"01234"``, ``[0, 1]``,
    ``["mon", "tue"]`` or ``"weekdays"`` / ``"weekends"``."""
    if value is None:
        return ALL_DAYS
    if value == "weekdays":
        return "01234"
    if value == "weekends":
        return "56"
    items: list[int | str] = list(value)
    found: set[int] = set()
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            found.add(item)
        elif isinstance(item, str) and item.isdigit() and 0 <= int(item) <= 6:
            found.add(int(item))
        elif isinstance(item, str) and item.lower()[:3] in _DAY_NAMES and len(item) >= 3:
            found.add(_DAY_NAMES.index(item.lower()[:3]))
        else:
            raise ValidationError(
                f"quiet hours day {item!r}: use 0-6 (Monday=0), 'mon'..'sun', "
                "'weekdays' or 'weekends'"
            )
    if not found:
        raise ValidationError("quiet hours need at least one day (or days=None for every day)")
    return "".join(str(d) for d in sorted(found))


def parse_window(spec: QuietWindow | Sequence[object]) -> QuietWindow:
    """A window from ``("22:00", "07:00")`` or ``("22:00", "07:00", days)``."""
    if isinstance(spec, QuietWindow):
        start, end, days = spec.start, spec.end, parse_days(spec.days)
    else:
        if isinstance(spec, str | bytes) or len(spec) not in (2, 3):
            raise ValidationError(
                f"quiet hours window {spec!r}: use (start, end) or (start, end, days)"
            )
        start = parse_time(spec[0], "start")  # type: ignore[arg-type]
        end = parse_time(spec[1], "end")  # type: ignore[arg-type]
        days = parse_days(spec[2] if len(spec) == 3 else None)  # type: ignore[arg-type]
    if start == end:
        raise ValidationError(
            f"quiet hours window {start:%H:%M}-{end:%H:%M} is empty; "
            "use 00:00-23:59 for a whole day"
        )
    return QuietWindow(start, end, days)


@checked_methods
class QuietHours:
    """Read and write subscribers' quiet-hours windows (by their external id)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def set(
        self, subscriber_id: str, windows: Iterable[QuietWindow | Sequence[object]]
    ) -> list[QuietWindow]:
        """Replace the subscriber's windows, e.g. ``[("22:00", "07:00", "weekdays")]``.

        Raises:
            ValidationError: a bad time, day or empty window, or windows covering the
                whole week; nothing is saved.
            NotFoundError: no such subscriber.
        """
        parsed = [parse_window(w) for w in windows]
        if parsed and covers_whole_week(parsed):
            raise ValidationError(
                "quiet hours cover the whole week: nothing could ever be delivered "
                "outside them; leave at least one minute free"
            )
        with self.store.session(write=True) as session:
            pk = subscriber_pk(session, subscriber_id)
            session.execute(delete(QuietHoursWindow).where(QuietHoursWindow.subscriber_id == pk))
            session.add_all(
                QuietHoursWindow(subscriber_id=pk, start=w.start, end=w.end, days=w.days)
                for w in parsed
            )
        return parsed

    def list(self, subscriber_id: str) -> list[QuietWindow]:
        """The subscriber's windows in the order they were set."""
        with self.store.session() as session:
            pk = subscriber_pk(session, subscriber_id)
            return windows_for(session, [pk]).get(pk, [])

    def clear(self, subscriber_id: str) -> int:
        """Remove every window; returns how many there were."""
        with self.store.session(write=True) as session:
            pk = subscriber_pk(session, subscriber_id)
            result = session.execute(
                delete(QuietHoursWindow).where(QuietHoursWindow.subscriber_id == pk)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]


_QUIET_HOURS = table(QuietHoursWindow)
#: Built once: constructing a statement costs more than running it on SQLite.
_WINDOWS = (
    select(
        _QUIET_HOURS.c.subscriber_id,
        _QUIET_HOURS.c.start,
        _QUIET_HOURS.c.end,
        _QUIET_HOURS.c.days,
    )
    .where(_QUIET_HOURS.c.subscriber_id.in_(bindparam("pks", expanding=True)))
    .order_by(_QUIET_HOURS.c.id)
)


def windows_for(session: Session, subscriber_pks: Iterable[int]) -> dict[int, list[QuietWindow]]:
    """Windows of these subscribers (by primary key), in one query per 5,000."""
    out: dict[int, list[QuietWindow]] = {}
    pks = sorted(set(subscriber_pks))
    conn = session.connection()
    for start in range(0, len(pks), 5000):
        for row in conn.execute(_WINDOWS, {"pks": pks[start : start + 5000]}):
            out.setdefault(row.subscriber_id, []).append(
                QuietWindow(row.start, row.end, row.days or ALL_DAYS)
            )
    return out


class QuietHoursPolicy(Policy):
    """Defers (or silences, for in-app) deliveries inside the subscriber's quiet hours."""

    name = "quiet_hours"

    def preload(self, subscriber_id: ColumnElement[int]) -> ColumnElement[Any]:
        """The subscriber's windows as a JSON array of ``["HH:MM:SS", "HH:MM:SS",
        days]`` in creation order (NULL when they have none)."""
        row = func.json_build_array(_QUIET_HOURS.c.start, _QUIET_HOURS.c.end, _QUIET_HOURS.c.days)
        return (
            select(func.json_agg(aggregate_order_by(row, _QUIET_HOURS.c.id)))
            .where(_QUIET_HOURS.c.subscriber_id == subscriber_id)
            .scalar_subquery()
        )

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        relevant = [c for c in candidates if c.priority is not Priority.URGENT]
        if not relevant:
            return {}
        known, unknown = self.preloaded_for(relevant)
        windows = {
            pk: [
                QuietWindow(time.fromisoformat(start), time.fromisoformat(end), days or ALL_DAYS)
                for start, end, days in rows or ()
            ]
            for pk, rows in known.items()
        }
        if unknown:
            windows.update(windows_for(session, unknown))
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
            if c.stores_silently:
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
