"""Scheduled events: cancel or move one before it fans out.

An event waits in ``pending`` until its ``send_at``; fan-out then turns it into
notifications. Cancelling or rescheduling is one conditional ``UPDATE … WHERE status =
'pending'``: whichever of it and fan-out commits first wins, on both stores (fan-out
locks the row on PostgreSQL and holds the writer lock on SQLite, and re-reads the
status under it). The loser is told precisely: :class:`EventNotPendingError` with the
status it found, or :class:`NotFoundError`.

Campaigns reuse :func:`cancel_where` and :func:`reschedule_where` for their own events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Event, table
from dispatcher.enums import EventStatus, Priority
from dispatcher.errors import (
    EventNotPendingError,
    InvalidArgumentError,
    NotFoundError,
    ValidationError,
)
from dispatcher.validation import check_storable

_EVENTS = table(Event)
_RETURNING = (
    _EVENTS.c.id,
    _EVENTS.c.status,
    _EVENTS.c.send_at,
    _EVENTS.c.priority,
    _EVENTS.c.campaign_id,
)


@dataclass(frozen=True)
class EventChange:
    """An event as cancel or reschedule left it."""

    id: int
    status: EventStatus
    send_at: datetime
    priority: Priority
    #: Part of a campaign (rung on the bulk queue).
    bulk: bool
    #: False when the call found it already so (cancelling a cancelled event).
    changed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status.value,
            "send_at": self.send_at.isoformat(),
            "priority": self.priority.value,
            "changed": self.changed,
        }


def event_condition(event_id: int | None, idempotency_key: str | None) -> ColumnElement[bool]:
    """``events.id = …`` or ``events.idempotency_key = …``: exactly one must be given.

    Raises:
        ValidationError: neither or both; an id beyond 64 bits; a key no store holds.
    """
    if (event_id is None) == (idempotency_key is None):
        raise ValidationError("give either event_id or idempotency_key (exactly one)")
    if event_id is not None:
        if isinstance(event_id, bool) or not isinstance(event_id, int):
            raise InvalidArgumentError("event_id", "event_id must be an int")
        if not 1 <= event_id <= 2**63 - 1:
            raise ValidationError(f"event_id must be from 1 to 2**63-1, not {event_id}")
        return _EVENTS.c.id == event_id
    if not isinstance(idempotency_key, str):
        raise InvalidArgumentError("idempotency_key", "idempotency_key must be a str")
    check_storable(idempotency_key, "idempotency_key")
    return _EVENTS.c.idempotency_key == idempotency_key


def cancel_where(session: Session, condition: ColumnElement[bool]) -> list[EventChange]:
    """Cancel the pending events matching ``condition`` in ``session``; return them."""
    statement = (
        update(_EVENTS)
        .where(condition, _EVENTS.c.status == EventStatus.PENDING)
        .values(status=EventStatus.CANCELLED)
        .returning(*_RETURNING)
    )
    return [_change(row) for row in session.connection().execute(statement)]


def reschedule_where(
    session: Session, condition: ColumnElement[bool], send_at: datetime
) -> list[EventChange]:
    """Move the pending events matching ``condition`` to ``send_at``; return them."""
    statement = (
        update(_EVENTS)
        .where(condition, _EVENTS.c.status == EventStatus.PENDING)
        .values(send_at=send_at)
        .returning(*_RETURNING)
    )
    return [_change(row) for row in session.connection().execute(statement)]


def cancel(
    store: Store, *, event_id: int | None = None, idempotency_key: str | None = None
) -> EventChange:
    """Cancel one event that has not fanned out yet. Cancelling it again is harmless
    (``changed`` is then False).

    Raises:
        NotFoundError: no such event.
        EventNotPendingError: it has already fanned out (or failed).
        ValidationError: neither or both of ``event_id`` and ``idempotency_key``.
    """
    condition = event_condition(event_id, idempotency_key)
    with store.session(write=True) as session:
        done = cancel_where(session, condition)
        if done:
            log.info("event.cancelled", event_id=done[0].id)
            return done[0]
        found = _current(session, condition, event_id, idempotency_key)
        if found.status == EventStatus.CANCELLED:
            return EventChange(
                found.id, found.status, found.send_at, found.priority, found.bulk, changed=False
            )
        raise EventNotPendingError(found.id, found.status, "cancel")


def reschedule(
    store: Store,
    *,
    send_at: datetime,
    event_id: int | None = None,
    idempotency_key: str | None = None,
    now: datetime | None = None,
) -> EventChange:
    """Move one event that has not fanned out yet to ``send_at`` (aware; a past instant
    means now, as in ``notify``).

    Raises:
        NotFoundError: no such event.
        EventNotPendingError: it has already fanned out, or was cancelled or failed.
        ValidationError: a naive ``send_at``; neither or both of the references.
    """
    if not isinstance(send_at, datetime):
        raise InvalidArgumentError(
            "send_at", f"send_at must be a datetime, not {send_at.__class__.__name__}"
        )
    if send_at.tzinfo is None:
        raise ValidationError("send_at must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
    condition = event_condition(event_id, idempotency_key)
    with store.session(write=True) as session:
        when = max(send_at, now or utcnow())
        done = reschedule_where(session, condition, when)
        if done:
            log.info("event.rescheduled", event_id=done[0].id, send_at=when.isoformat())
            return done[0]
        found = _current(session, condition, event_id, idempotency_key)
        raise EventNotPendingError(found.id, found.status, "reschedule")


def _current(
    session: Session,
    condition: ColumnElement[bool],
    event_id: int | None,
    idempotency_key: str | None,
) -> EventChange:
    row = session.connection().execute(select(*_RETURNING).where(condition)).one_or_none()
    if row is None:
        what = (
            f"event {event_id}" if event_id is not None else f"event with key {idempotency_key!r}"
        )
        raise NotFoundError(f"no {what}")
    return _change(row)


def _change(row: Any) -> EventChange:
    return EventChange(
        id=row.id,
        status=EventStatus(row.status),
        send_at=row.send_at,
        priority=Priority(row.priority),
        bulk=row.campaign_id is not None,
    )
