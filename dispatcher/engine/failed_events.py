"""Events that cannot fan out: counted, then marked ``failed`` with a reason.

An event whose fan-out fails on its own (not because its batch did) is poison for the
loop that keeps ringing it: the sweep would ring it every few seconds, forever, and it
would stay ``pending``. So each such failure is recorded on the event:

* a failure that would repeat exactly, whatever the worker (the database refused the
  event's data: :class:`~sqlalchemy.exc.DataError`, parameters that cannot even be
  encoded, or data our own checks refuse) marks it ``failed`` at once, reason
  ``invalid_data``;
* any other failure (a type this worker does not know, as in a deploy where workers lag
  behind; a bug) is counted, and the event is marked ``failed`` at the
  :data:`MAX_FANOUT_ATTEMPTS`-th (reason ``unknown_type`` or ``fanout_error``);
* a lost connection or a locked database is none of the event's fault: it is raised,
  the task retries, and nothing is counted (:func:`is_transient`).

The reason and detail are for ``explain`` and logs: error class names and field
positions, never the event's data (a driver's message may quote the values).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, update
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    StatementError,
)

from dispatcher import log
from dispatcher.db.engine import Store
from dispatcher.db.models import Event, table
from dispatcher.enums import EventStatus, Reason
from dispatcher.errors import UnknownEventTypeError, ValidationError

#: Failures of one event, alone, before it is marked ``failed`` (when they are not of
#: the kind that would repeat exactly: those fail it at once). With the sweep ringing
#: every few seconds, this is about half a minute past the sweep's grace period.
MAX_FANOUT_ATTEMPTS = 5

_EVENTS = table(Event)
_COUNT = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"), _EVENTS.c.status == EventStatus.PENDING)
    .values(fanout_attempts=_EVENTS.c.fanout_attempts + 1)
    .returning(_EVENTS.c.fanout_attempts)
)
_FAIL = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("event_id"), _EVENTS.c.status == bindparam("from_status"))
    .values(status=EventStatus.FAILED, reason=bindparam("reason"), detail=bindparam("detail"))
)


@dataclass(frozen=True)
class Verdict:
    """What to record of one failure of one event's fan-out."""

    reason: Reason
    #: It would fail the same way on every try: give up at once.
    permanent: bool
    #: Error classes (and positions), safe to log and show.
    detail: str


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's trouble, not the event's: retry, count nothing."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def judge(exc: BaseException) -> Verdict:
    """Classify a non-transient fan-out failure of one event."""
    if isinstance(exc, UnknownEventTypeError):
        return Verdict(Reason.UNKNOWN_TYPE, False, f"UnknownEventTypeError: {exc.type_name!r}")
    if isinstance(exc, DataError):
        return Verdict(Reason.INVALID_DATA, True, _classes(exc))
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        # The parameters could not even be sent (an encoding or JSON error).
        return Verdict(Reason.INVALID_DATA, True, _classes(exc))
    if isinstance(exc, ValidationError):
        return Verdict(Reason.INVALID_DATA, True, _classes(exc))
    return Verdict(Reason.FANOUT_ERROR, False, _classes(exc))


def _classes(exc: BaseException) -> str:
    """``DataError (psycopg.errors.UntranslatableCharacter)``: what, never the values."""
    name = type(exc).__name__
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        cause = type(orig)
        name += f" ({cause.__module__}.{cause.__qualname__})"
    return name[:255]


def mark_failed(
    conn: Connection,
    event_id: int,
    reason: Reason,
    detail: str,
    *,
    from_status: EventStatus = EventStatus.PENDING,
) -> None:
    """Mark event ``event_id`` ``failed`` if it is still ``from_status`` (pending, or
    fanned out earlier in the caller's transaction), in the caller's transaction."""
    params = {
        "event_id": event_id,
        "reason": reason.value,
        "detail": detail[:255],
        "from_status": from_status,
    }
    conn.execute(_FAIL, params)


def record_failure(store: Store, event_id: int, exc: BaseException) -> bool:
    """Record that fan-out of ``event_id`` alone raised ``exc``; True if the event is now
    ``failed`` (it is left ``pending`` below the bound, and not counted if it is no
    longer pending).

    Raises:
        ``exc`` itself if it is transient (:func:`is_transient`); database errors while
        recording.
    """
    if is_transient(exc):
        raise exc
    verdict = judge(exc)
    with store.session(write=True) as session:
        conn = session.connection()
        attempts = conn.execute(_COUNT, {"event_id": event_id}).scalar_one_or_none()
        final = attempts is not None and (verdict.permanent or attempts >= MAX_FANOUT_ATTEMPTS)
        if final:
            detail = verdict.detail
            if not verdict.permanent:
                detail = f"{detail}; {attempts} attempts"[:255]
            mark_failed(conn, event_id, verdict.reason, detail)
    log.error(
        "fanout.failed",
        event_id=event_id,
        error=type(exc).__name__,
        attempts=attempts,
        reason=verdict.reason.value,
        gave_up=final,
    )
    return final
