"""``notify``: validate an event, store it, and ring the doorbell after commit.

This is the transactional outbox. With ``session=`` the event joins the caller's
transaction: if the caller rolls back, the event never existed and nothing is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, any_, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.catalog import Catalog
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Event, Subscriber, table
from dispatcher.engine.doorbell import Doorbell
from dispatcher.enums import EventStatus, Priority
from dispatcher.errors import (
    IdempotencyConflictError,
    InvalidArgumentError,
    UnknownSubscriberError,
    ValidationError,
)
from dispatcher.subscribers.inline import Recipients, parse_recipients, upsert_inline
from dispatcher.validation import check_identifier

#: Rows per ``IN (...)`` when checking recipients.
LOOKUP_CHUNK = 5000


_EVENTS = table(Event)
_SUBSCRIBERS = table(Subscriber)
#: Built once: constructing a statement costs more than running it on SQLite.
_INSERT_EVENT = insert(_EVENTS).returning(_EVENTS.c.id)
_BY_KEY = select(_EVENTS).where(_EVENTS.c.idempotency_key == bindparam("key"))
#: PostgreSQL: the event inserted only if every recipient is known, in one statement
#: run outside a transaction (one round trip instead of BEGIN, lookup, insert, COMMIT).
#: An array parameter, not ``IN (…)``: one statement text for any number of recipients,
#: prepared once per connection.
_EVENT_COLUMNS = (
    "type",
    "payload",
    "recipients",
    "priority",
    "send_at",
    "status",
    "created_at",
    "fanout_attempts",
    "campaign_id",
    "actor",
)


def _insert_if(condition: Any) -> Any:
    return (
        insert(_EVENTS)
        .from_select(
            list(_EVENT_COLUMNS),
            select(*[bindparam(c, type_=_EVENTS.c[c].type) for c in _EVENT_COLUMNS]).where(
                condition
            ),
        )
        .returning(_EVENTS.c.id)
    )


#: One recipient (the usual case): an equality, which the plan always answers from the
#: unique index, even as a generic plan.
_INSERT_IF_KNOWN_ONE = _insert_if(
    select(_SUBSCRIBERS.c.id).where(_SUBSCRIBERS.c.external_id == bindparam("external_id")).exists()
)
_INSERT_IF_KNOWN = _insert_if(
    select(func.count())
    .select_from(_SUBSCRIBERS)
    .where(_SUBSCRIBERS.c.external_id == any_(bindparam("external_ids", type_=ARRAY(String))))
    .scalar_subquery()
    == bindparam("known")
)
_KNOWN_RECIPIENTS = select(_SUBSCRIBERS.c.external_id).where(
    _SUBSCRIBERS.c.external_id.in_(bindparam("external_ids", expanding=True))
)


@dataclass(frozen=True)
class EventReceipt:
    """What ``notify`` returns: the stored event, or the earlier one with the same key."""

    id: int
    type: str
    priority: Priority
    recipients: int
    send_at: datetime
    idempotency_key: str | None
    #: False when an event with the same idempotency key already existed.
    created: bool


class Outbox:
    """Stores events and rings the doorbell once they are committed."""

    def __init__(self, store: Store, catalog: Catalog, doorbell: Doorbell) -> None:
        self.store = store
        self.catalog = catalog
        self.doorbell = doorbell

    def notify(
        self,
        type: str,
        *,
        to: str | Mapping[str, Any] | Iterable[str | Mapping[str, Any]],
        data: Mapping[str, Any] | None = None,
        priority: Priority | str | None = None,
        idempotency_key: str | None = None,
        send_at: datetime | None = None,
        session: Session | None = None,
        campaign_id: int | None = None,
        actor: str | None = None,
    ) -> EventReceipt:
        """Record that ``type`` happened for subscribers ``to``; see :meth:`Dispatcher.notify`."""
        notification_type = self.catalog.get(type)
        payload = notification_type.validate(data or {})
        chosen = _priority(priority, notification_type.priority)
        parsed = parse_recipients(to)
        now = utcnow()
        if send_at is not None and not isinstance(send_at, datetime):
            raise InvalidArgumentError(
                "send_at", f"send_at must be a datetime or None, not {send_at.__class__.__name__}"
            )
        if session is not None and not isinstance(session, Session):
            raise InvalidArgumentError(
                "session", f"session must be a SQLAlchemy Session, not {session.__class__.__name__}"
            )
        if send_at is not None and send_at.tzinfo is None:
            raise ValidationError("send_at must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
        when = max(send_at, now) if send_at is not None else now
        if idempotency_key is not None:
            check_identifier(idempotency_key, "idempotency_key")
        if actor is not None:
            check_identifier(actor, "actor")

        if session is not None:
            receipt = self._store(
                session,
                type,
                payload,
                parsed,
                chosen,
                idempotency_key,
                when,
                now,
                campaign_id,
                actor,
            )
            if self._due(receipt, now):
                bulk = campaign_id is not None
                self.doorbell.after_commit(session, lambda: self._ring(receipt, bulk))
            return receipt
        if self._at_once(parsed, idempotency_key):
            quick = self._store_at_once(
                type, payload, parsed.ids, chosen, when, now, campaign_id, actor
            )
            if quick is not None:
                if self._due(quick, now):
                    self._ring(quick, campaign_id is not None)
                return quick
            # A recipient is unknown: the usual path names it (or finds it created since).
        with self.store.session(write=True) as own:
            receipt = self._store(
                own, type, payload, parsed, chosen, idempotency_key, when, now, campaign_id, actor
            )
        # Rung once the session is closed: on SQLite, after the writer lock is released,
        # so workers do not wait on our trip to the broker.
        if self._due(receipt, now):
            self._ring(receipt, campaign_id is not None)
        return receipt

    def _at_once(self, parsed: Recipients, key: str | None) -> bool:
        """Whether the event can be stored in one statement: on PostgreSQL, with no
        idempotency key (its replay check reads first) and no inline recipients (they
        are written with it), for a list the statement can check at once."""
        return (
            self.store.is_postgres
            and key is None
            and not parsed.inline
            and 0 < len(parsed.ids) <= LOOKUP_CHUNK
        )

    def _store_at_once(
        self,
        type: str,
        payload: dict[str, Any],
        recipients: list[str],
        priority: Priority,
        send_at: datetime,
        now: datetime,
        campaign_id: int | None,
        actor: str | None,
    ) -> EventReceipt | None:
        """Store the event in one autocommitted statement if every recipient is known;
        None (nothing stored) if one is not."""
        row = {
            "type": type,
            "payload": payload,
            "recipients": recipients,
            "priority": priority,
            "send_at": send_at,
            "status": EventStatus.PENDING,
            "created_at": now,
            "fanout_attempts": 0,
            "campaign_id": campaign_id,
            "actor": actor,
        }
        if len(recipients) == 1:
            statement, row["external_id"] = _INSERT_IF_KNOWN_ONE, recipients[0]
        else:
            statement = _INSERT_IF_KNOWN
            row.update(external_ids=recipients, known=len(recipients))
        with self.store.autocommit() as conn:
            event_id = conn.execute(statement, row).scalar_one_or_none()
        if event_id is None:
            return None
        log.info("event.stored", event_id=event_id, type=type, recipients=len(recipients))
        return EventReceipt(event_id, type, priority, len(recipients), send_at, None, True)

    def _ring(self, receipt: EventReceipt, bulk: bool) -> None:
        self.doorbell.fanout(
            receipt.id,
            receipt.priority,
            bulk=bulk,
            type_name=receipt.type,
            recipients=receipt.recipients,
        )

    @staticmethod
    def _due(receipt: EventReceipt, now: datetime) -> bool:
        """A new event that is due now rings; a replay or a scheduled one does not."""
        return receipt.created and receipt.send_at <= now

    def _store(
        self,
        session: Session,
        type: str,
        payload: dict[str, Any],
        parsed: Recipients,
        priority: Priority,
        key: str | None,
        send_at: datetime,
        now: datetime,
        campaign_id: int | None,
        actor: str | None = None,
    ) -> EventReceipt:
        conn = session.connection()
        if key is not None:
            existing = conn.execute(_BY_KEY, {"key": key}).one_or_none()
            if existing is not None:
                return _replay(existing, type, payload)
        recipients = parsed.ids
        # Inline recipients join the event's transaction: a refused event stores neither.
        upsert_inline(session, parsed.inline)
        _check_recipients(session, recipients)
        row = {
            "type": type,
            "payload": payload,
            "recipients": recipients,
            "priority": priority,
            "idempotency_key": key,
            "send_at": send_at,
            "created_at": now,
            "campaign_id": campaign_id,
            "actor": actor,
        }
        if key is None:
            event_id = conn.execute(_INSERT_EVENT, row).scalar_one()
        else:
            try:
                # A savepoint, so a concurrent insert of the same key leaves the caller's
                # transaction usable.
                with session.begin_nested():
                    event_id = conn.execute(_INSERT_EVENT, row).scalar_one()
            except IntegrityError:
                # Another caller stored the same key between our check and our insert.
                existing = conn.execute(_BY_KEY, {"key": key}).one_or_none()
                if existing is None:
                    raise
                return _replay(existing, type, payload)
        log.info("event.stored", event_id=event_id, type=type, recipients=len(recipients))
        return EventReceipt(event_id, type, priority, len(recipients), send_at, key, True)


def _replay(existing: Any, type: str, payload: dict[str, Any]) -> EventReceipt:
    if existing.type != type or existing.payload != payload:
        raise IdempotencyConflictError(
            f"idempotency key {existing.idempotency_key!r} was already used for event "
            f"{existing.id} ({existing.type}) with different data"
        )
    return EventReceipt(
        existing.id,
        existing.type,
        existing.priority,
        len(existing.recipients),
        existing.send_at,
        existing.idempotency_key,
        False,
    )


def _priority(value: Priority | str | None, default: Priority) -> Priority:
    if value is None:
        return default
    try:
        return Priority(value)
    except ValueError:
        raise ValidationError(
            f"unknown priority {value!r}; use one of: {', '.join(p.value for p in Priority)}"
        ) from None


def _check_recipients(session: Session, recipients: list[str]) -> None:
    found: set[str] = set()
    conn = session.connection()
    for start in range(0, len(recipients), LOOKUP_CHUNK):
        chunk = recipients[start : start + LOOKUP_CHUNK]
        found.update(conn.scalars(_KNOWN_RECIPIENTS, {"external_ids": chunk}))
    missing = [r for r in recipients if r not in found]
    if missing:
        raise UnknownSubscriberError(missing)
