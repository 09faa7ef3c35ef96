"""``/api/quiet-hours``: the caller's quiet-hours windows and time zone over REST.

The same rules and the same messages as :class:`~dispatcher.policies.quiet_hours.QuietHours`
in Python: a bad time, day, empty window, a week with no free minute or an unknown time
zone answers 400 with the message Python raises, and nothing is saved. Windows are in the
subscriber's own time zone, which ``PUT`` may change in the same call.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from dispatcher.errors import NotFoundError
from dispatcher.gateway.rest import COMMON_RESPONSES, Caller, Gw, run_blocking
from dispatcher.gateway.schemas import Changed, Problem
from dispatcher.policies.quiet_hours import QuietWindow, parse_window
from dispatcher.subscribers.addresses import validate_timezone

router = APIRouter(prefix="/api", responses=COMMON_RESPONSES, tags=["quiet hours"])

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NO_SUBSCRIBER: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Subscriber not stored"}
}

Day = Annotated[str, Field(max_length=9)] | Annotated[int, Field(ge=0, le=6)]


class QuietWindowIn(BaseModel):
    """One window in the subscriber's local time: ``22:00``-``07:00`` crosses midnight."""

    model_config = ConfigDict(extra="forbid")

    start: str = Field(max_length=8, examples=["22:00"])
    end: str = Field(max_length=8, examples=["07:00"])
    #: ``["mon", "tue"]``, ``[0, 1]`` (Monday is 0), ``"weekdays"``, ``"weekends"``;
    #: every day when left out.
    days: Annotated[list[Day], Field(max_length=7)] | Annotated[str, Field(max_length=9)] | None = (
        None
    )


class QuietHoursIn(BaseModel):
    """Replace every window; ``timezone`` (an IANA name) also sets the subscriber's."""

    model_config = ConfigDict(extra="forbid")

    windows: list[QuietWindowIn] = Field(max_length=14)
    timezone: str | None = Field(default=None, max_length=64, examples=["Europe/Madrid"])


class QuietWindowOut(BaseModel):
    start: str
    end: str
    days: list[str]

    @classmethod
    def of(cls, window: QuietWindow) -> QuietWindowOut:
        return cls(
            start=f"{window.start:%H:%M}",
            end=f"{window.end:%H:%M}",
            days=[_DAY_NAMES[int(d)] for d in window.days],
        )


class QuietHoursOut(BaseModel):
    """The caller's windows and the time zone they are read in."""

    timezone: str
    windows: list[QuietWindowOut]


def _not_found() -> HTTPException:
    return HTTPException(404, "not found")


@router.get("/quiet-hours", summary="My quiet hours", responses=_NO_SUBSCRIBER)
async def get_quiet_hours(caller: Caller, gw: Gw) -> QuietHoursOut:
    d = gw.dispatcher

    def read() -> QuietHoursOut:
        try:
            subscriber = d.subscribers.get(caller.subscriber_id)
            windows = d.quiet_hours.list(caller.subscriber_id)
        except NotFoundError:
            raise _not_found() from None
        return QuietHoursOut(
            timezone=subscriber.timezone, windows=[QuietWindowOut.of(w) for w in windows]
        )

    return await run_blocking(read)


@router.put("/quiet-hours", summary="Replace my quiet hours", responses=_NO_SUBSCRIBER)
async def put_quiet_hours(caller: Caller, gw: Gw, body: QuietHoursIn) -> QuietHoursOut:
    d = gw.dispatcher
    # Everything is checked before anything is written (ValidationError answers 400).
    if body.timezone is not None:
        validate_timezone(body.timezone)
    specs = [(w.start, w.end, w.days) for w in body.windows]
    for spec in specs:
        parse_window(spec)

    def write() -> QuietHoursOut:
        try:
            subscriber = d.subscribers.get(caller.subscriber_id)
            stored = d.quiet_hours.set(caller.subscriber_id, specs)
        except NotFoundError:
            raise _not_found() from None
        timezone = subscriber.timezone
        if body.timezone is not None and body.timezone != timezone:
            timezone = d.subscribers.upsert(caller.subscriber_id, timezone=body.timezone).timezone
        return QuietHoursOut(timezone=timezone, windows=[QuietWindowOut.of(w) for w in stored])

    return await run_blocking(write)


@router.delete("/quiet-hours", summary="Remove all my quiet hours", responses=_NO_SUBSCRIBER)
async def delete_quiet_hours(caller: Caller, gw: Gw) -> Changed:
    def remove() -> Changed:
        try:
            return Changed(changed=gw.dispatcher.quiet_hours.clear(caller.subscriber_id))
        except NotFoundError:
            raise _not_found() from None

    return await run_blocking(remove)
