"""Recurring schedules: five-field cron expressions read in a stated IANA time zone.

Beat runs in UTC with a short tick; the zone math is ours (Celery's crontab is buggy
around DST, see PITFALLS). A cron expression names *local wall-clock* times. Across a
change of offset:

* a local time that does not exist (the spring-forward gap, 02:30 on 2026-03-29 in
  Europe/Berlin) runs at the first instant after the gap (03:00 local), once;
* a local time that happens twice (the fall-back fold, 02:30 on 2026-10-25) runs once,
  at its first occurrence.

Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week
(0-6, Sunday = 0; 7 is Sunday too); each ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n`` or a
comma-separated list of them. As in Vixie cron, when both day fields are restricted a
day matches if either does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dispatcher.errors import InvalidCampaignError

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("weekday", 0, 7))
#: Days searched for a match before an expression is declared to never fire (Feb 30).
_HORIZON_DAYS = 366 * 5


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return by_weekday
        if self.any_weekday:
            return by_day
        return by_day or by_weekday

    def times(self) -> list[time]:
        """The local times of day it fires at, in order."""
        return [time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]


def parse_cron(expression: str) -> Cron:
    """Parse a five-field cron expression.

    Raises:
        InvalidCampaignError: (``field="cron"``) wrong number of fields, or a field out
            of range or malformed (named in the message).
    """
    if not isinstance(expression, str):
        raise InvalidCampaignError("cron must be a string like '0 9 * * 1'", field="cron")
    parts = expression.split()
    if len(parts) != 5:
        raise InvalidCampaignError(
            f"cron {expression!r}: expected 5 fields (minute hour day month weekday), "
            f"got {len(parts)}",
            field="cron",
        )
    values = [
        _field(part, name, low, high)
        for part, (name, low, high) in zip(parts, _FIELDS, strict=True)
    ]
    weekdays = frozenset(7 if d == 7 else d for d in values[4])
    weekdays = frozenset(0 if d == 7 else d for d in weekdays)
    return Cron(
        expression=" ".join(parts),
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=weekdays,
        any_day=parts[2] == "*",
        any_weekday=parts[4] == "*",
    )


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        step = 1
        body = item
        if "/" in item:
            body, _, step_text = item.partition("/")
            if not step_text.isdigit() or int(step_text) < 1:
                raise _bad(text, name, f"step {step_text!r} must be a whole number >= 1")
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            if not (a.isdigit() and b.isdigit()):
                raise _bad(text, name, f"range {body!r} is not two numbers")
            start, end = int(a), int(b)
        elif body.isdigit():
            start = end = int(body)
            if "/" in item:
                end = high
        else:
            raise _bad(text, name, f"{body!r} is not a number, range or '*'")
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise _bad(text, name, f"values must lie in {low}-{high}")
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _bad(text: str, name: str, why: str) -> InvalidCampaignError:
    return InvalidCampaignError(f"cron {name} field {text!r}: {why}", field="cron")


def next_after(cron: Cron, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first firing strictly after ``after`` (aware), as a UTC instant; None if it
    never fires within five years."""
    after_utc = after.astimezone(UTC)
    local_day = after_utc.astimezone(zone).date() - timedelta(days=1)
    times = cron.times()
    for _ in range(_HORIZON_DAYS):
        if cron.day_matches(local_day):
            for wall in times:
                instant = _instant(datetime.combine(local_day, wall), zone)
                if instant > after_utc:
                    return instant
        local_day += timedelta(days=1)
    return None


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of local wall time ``wall``: its first occurrence in a fold; the
    first instant after the gap if it falls in one."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: the two readings of ``wall`` (offset before and after) lie on either
    # side of the change. Find the first minute whose local time is past ``wall``.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(first, other), max(first, other)
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        middle = middle.replace(second=0, microsecond=0)
        if middle <= low:
            break
        if middle.astimezone(zone).replace(tzinfo=None) > wall:
            high = middle
        else:
            low = middle
    return high
