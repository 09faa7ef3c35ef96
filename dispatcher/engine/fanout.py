"""Fan-out: one event becomes a notification per recipient and a delivery per channel.

Idempotent: notifications are unique per (event, subscriber) and deliveries per
(notification, channel), inserted with "on conflict do nothing", so running fan-out
twice yields the same rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, bindparam, select, update
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.catalog import Catalog
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store, insert_ignore
from dispatcher.db.models import Delivery, Event, Notification, Subscriber, table
from dispatcher.db.types import UTCDateTime
from dispatcher.engine.bulk_fanout import BulkFanout, BulkOutcome, fan_out_in_bulk
from dispatcher.engine.bulk_inbox import Pings
from dispatcher.engine.claim import Ticket
from dispatcher.engine.delivery import Batch, Deliverer, DeliverReport, EventFacts, NewDelivery
from dispatcher.engine.doorbell import Doorbell
from dispatcher.engine.failed_events import mark_failed
from dispatcher.enums import DeliveryStatus, EventStatus, Priority, Reason
from dispatcher.validation import json_problem

LOOKUP_CHUNK = 5000


@dataclass(frozen=True)
class FanoutResult:
    event_id: int
    #: Rows this run created (0 when a racing duplicate found them made).
    notifications: int
    deliveries: int
    #: Recipients deleted between ``notify`` and fan-out.
    missing: int
    #: False when the event was already fanned out, cancelled, or not due yet.
    done: bool
    #: It was marked ``failed`` instead (data no store can keep).
    failed: bool = False
    #: What sending its deliveries inline did (shared by the events fanned out in the
    #: same transaction); None when nothing was sent inline.
    sent: DeliverReport | None = field(default=None, compare=False)


_EVENTS = table(Event)
_NOTIFICATIONS = table(Notification)
_DELIVERIES = table(Delivery)
_SUBSCRIBERS = table(Subscriber)

#: Built once: constructing a statement costs more than running it on SQLite.
_LOAD_EVENT = select(
    _EVENTS.c.type,
    _EVENTS.c.payload,
    _EVENTS.c.recipients,
    _EVENTS.c.priority,
    _EVENTS.c.status,
    _EVENTS.c.send_at,
    _EVENTS.c.campaign_id,
    _EVENTS.c.actor,
).where(_EVENTS.c.id == bindparam("event_id"))
#: On PostgreSQL a second fan-out of the same event waits here and then finds it done.
_LOCK_EVENT = _LOAD_EVENT.with_for_update()
_BY_EXTERNAL_ID = _SUBSCRIBERS.c.external_id.in_(bindparam("external_ids", expanding=True))
_SUBSCRIBER_IDS = select(
    _SUBSCRIBERS.c.id.label("subscriber_id"), _SUBSCRIBERS.c.external_id
).where(_BY_EXTERNAL_ID)
_DUE_EVENTS = (
    select(_EVENTS.c.id, *_LOAD_EVENT.selected_columns)
    .where(
        _EVENTS.c.status == EventStatus.PENDING,
        _EVENTS.c.send_at <= bindparam("now", type_=UTCDateTime()),
        _EVENTS.c.priority == bindparam("due_priority"),
        _EVENTS.c.id.not_in(bindparam("skip", expanding=True)),
    )
    .order_by(_EVENTS.c.send_at, _EVENTS.c.id)
    .limit(bindparam("limit"))
)


def _next_due(bulk: bool, postgres: bool) -> Select[Any]:
    """The oldest due pending events of one priority, direct or campaign; on PostgreSQL
    locked, and skipped by a concurrent drain that holds them."""
    campaign = _EVENTS.c.campaign_id
    statement = _DUE_EVENTS.where(campaign.is_not(None) if bulk else campaign.is_(None))
    return statement.with_for_update(skip_locked=True) if postgres else statement


_NEXT_DUE = {(b, pg): _next_due(b, pg) for b in (False, True) for pg in (False, True)}


def _take_due(bulk: bool) -> Any:
    """PostgreSQL: lock the oldest due events (skipping those a concurrent drain holds)
    and mark them fanned out, returning them, in one statement instead of a select now
    and an update at the end. The transaction's rollback undoes the mark."""
    locked = _next_due(bulk, True).with_only_columns(_EVENTS.c.id).scalar_subquery()
    return (
        update(_EVENTS)
        .where(_EVENTS.c.id.in_(locked))
        .values(
            status=EventStatus.FANNED_OUT,
            fanned_out_at=bindparam("now", type_=UTCDateTime()),
        )
        .returning(_EVENTS.c.id, *_LOAD_EVENT.selected_columns)
    )


_TAKE_DUE = {b: _take_due(b) for b in (False, True)}
#: PostgreSQL: whether any event is due, read outside a transaction. A drain looks for
#: more after each batch and twice more once it has caught up; a look that finds
#: nothing then costs one round trip instead of three (BEGIN, the update, COMMIT).
_ANY_DUE = {
    b: _next_due(b, False).with_only_columns(_EVENTS.c.id).order_by(None).limit(1)
    for b in (False, True)
}
#: A drain's own event on PostgreSQL, as :data:`_TAKE_DUE` takes a batch: locked unless
#: another fan-out holds it, checked pending and due, and marked, in one statement.
_TAKE_ONE = (
    update(_EVENTS)
    .where(
        _EVENTS.c.id.in_(
            select(_EVENTS.c.id)
            .where(
                _EVENTS.c.id == bindparam("event_id"),
                _EVENTS.c.status == EventStatus.PENDING,
                _EVENTS.c.send_at <= bindparam("now", type_=UTCDateTime()),
            )
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(
        status=EventStatus.FANNED_OUT,
        fanned_out_at=bindparam("now", type_=UTCDateTime()),
    )
    .returning(_EVENTS.c.id, *_LOAD_EVENT.selected_columns)
)
#: For :mod:`dispatcher.engine.rehearsal`, which runs these once when a worker starts.
TAKE_DUE = _TAKE_DUE
LOAD_EVENT = _LOAD_EVENT
_MARK_FANNED_OUT = (
    update(_EVENTS)
    .where(_EVENTS.c.id.in_(bindparam("event_ids", expanding=True)))
    .values(status=EventStatus.FANNED_OUT, fanned_out_at=bindparam("now", type_=UTCDateTime()))
)


def fanout(
    store: Store,
    catalog: Catalog,
    doorbell: Doorbell,
    event_id: int,
    *,
    batch_size: int = 500,
    now: datetime | None = None,
    deliverer: Deliverer | None = None,
    inline_limit: int = 0,
    skip_locked: bool = False,
    in_bulk: BulkFanout | None = None,
) -> FanoutResult:
    """Create the notifications and deliveries of ``event_id`` and ring for delivery.

    With ``skip_locked`` (a drain's), an event that a concurrent fan-out holds on
    PostgreSQL is left to it at once instead of waited for (and reported not done).

    An event with at most ``inline_limit`` deliveries is delivered right here with
    ``deliverer`` instead: a second trip through the broker would cost more than the
    sending. Its deliveries are inserted already claimed and decided in the fan-out's
    own transaction, then sent after it commits. If sending fails half-way, the
    claimed rows' leases expire and the sweep delivers them again.

    An event to at least ``in_bulk.threshold`` recipients goes set-based where it can
    (see :mod:`dispatcher.engine.bulk_fanout`).
    """
    with store.session(write=True) as session:
        # Read once the writer lock is held: an event committed while we waited for it
        # is due by this clock.
        now = now or utcnow()
        conn = session.connection()
        marked = store.is_postgres and skip_locked
        if marked:
            event = conn.execute(_TAKE_ONE, {"event_id": event_id, "now": now}).one_or_none()
            if event is None:
                # Held by another fan-out (which fans it out), done, not due, or gone:
                # in every case not this drain's to fan out now.
                return FanoutResult(event_id, 0, 0, 0, False)
        else:
            lock = _LOCK_EVENT if store.is_postgres else _LOAD_EVENT
            event = conn.execute(lock, {"event_id": event_id}).one_or_none()
            if event is None:
                log.warning("fanout.no_event", event_id=event_id)
                return FanoutResult(event_id, 0, 0, 0, False)
            if event.status != EventStatus.PENDING or event.send_at > now:
                return FanoutResult(event_id, 0, 0, 0, False)
        events = [(event_id, event)]
        expanded = _expand(
            session, catalog, events, now, deliverer, inline_limit, marked=marked, in_bulk=in_bulk
        )
    # Sent and rung only once the transaction committed.
    return _finish(expanded, doorbell, batch_size, now)[0]


def fanout_due(
    store: Store,
    catalog: Catalog,
    doorbell: Doorbell,
    priority: Priority,
    *,
    bulk: bool = False,
    limit: int,
    skip: Collection[int] = (),
    batch_size: int = 500,
    now: datetime | None = None,
    deliverer: Deliverer | None = None,
    inline_limit: int = 0,
    in_bulk: BulkFanout | None = None,
) -> list[FanoutResult]:
    """Fan out up to ``limit`` of the oldest due pending events of ``priority``
    (campaign events if ``bulk``), but none of ``skip``, in one transaction, as
    :func:`fanout` does each; returns their results, none when nothing is due."""
    if store.is_postgres:
        with store.autocommit() as conn:
            parameters = {"now": now or utcnow(), "due_priority": priority, "skip": list(skip)}
            if conn.execute(_ANY_DUE[bulk], parameters).first() is None:
                return []
    with store.session(write=True) as session:
        now = now or utcnow()  # as in fanout(): once the writer lock is held
        conn = session.connection()
        parameters = {"now": now, "due_priority": priority, "limit": limit, "skip": list(skip)}
        events: Sequence[Any]
        if store.is_postgres:
            taken = conn.execute(_TAKE_DUE[bulk], parameters).all()
            events = sorted(taken, key=lambda e: (e.send_at, e.id))
        else:
            events = conn.execute(_NEXT_DUE[bulk, False], parameters).all()
        if not events:
            return []
        expanded = _expand(
            session,
            catalog,
            [(e.id, e) for e in events],
            now,
            deliverer,
            inline_limit,
            marked=store.is_postgres,
            in_bulk=in_bulk,
        )
    return _finish(expanded, doorbell, batch_size, now)


def due_event_ids(
    store: Store, priority: Priority, bulk: bool, limit: int, skip: Collection[int]
) -> list[int]:
    """The ids :func:`fanout_due` would take now (read without locking)."""
    with store.session() as session:
        parameters = {"now": utcnow(), "due_priority": priority, "limit": limit, "skip": list(skip)}
        rows = session.connection().execute(_NEXT_DUE[bulk, False], parameters)
        return [row.id for row in rows]


@dataclass
class _Expanded:
    """What one transaction's fan-out wrote, and what is left to do once it commits."""

    results: list[FanoutResult]
    #: Deliveries for the workers, by (priority, campaign or not, channel).
    to_ring: dict[tuple[Priority, bool, str], list[int]]
    #: The types of the deliveries in each ``to_ring`` entry (for the task's name).
    ring_types: dict[tuple[Priority, bool, str], set[str]] = field(default_factory=dict)
    #: Inline deliveries, decided and ready to send.
    inline: Deliverer | None = None
    batch: Batch | None = None
    #: Events marked ``failed`` instead, with what was wrong (logged after the commit).
    refused: dict[FanoutResult, str] = field(default_factory=dict)
    #: Set-based in-app pings (large events), published after the commit.
    pings: list[Pings] = field(default_factory=list)


def _expand(
    session: Session,
    catalog: Catalog,
    events: Sequence[tuple[int, Any]],
    now: datetime,
    deliverer: Deliverer | None,
    inline_limit: int,
    *,
    marked: bool = False,
    in_bulk: BulkFanout | None = None,
) -> _Expanded:
    """Insert the notifications and deliveries of loaded, pending, due events (already
    marked fanned out in this transaction if ``marked``); large ones set-based where
    they can be (``in_bulk``), their other recipients the per-recipient way."""
    conn = session.connection()
    events, refused = _refuse_unstorable(conn, events, marked)
    if not events:
        return _Expanded(results=list(refused), to_ring={}, refused=refused)
    by_id = dict(events)
    types = {event_id: catalog.get(event.type) for event_id, event in events}
    # Decided up front (recipients deleted since ``notify`` only make it smaller).
    inline = {
        event_id
        for event_id, event in events
        if deliverer is not None
        and len(event.recipients) * len(types[event_id].channels) <= inline_limit
    }
    bulk = _in_bulk(conn, in_bulk, events, types, inline, now)
    listed = {
        event_id: bulk[event_id].ordinary if event_id in bulk else event.recipients
        for event_id, event in events
    }
    wanted = list(dict.fromkeys(r for recipients in listed.values() for r in recipients))
    subscribers: dict[str, Any] = {}
    # Inline: what delivering needs of each recipient (its policies' data with it).
    lookup = deliverer.subscriber_rows if inline and deliverer else _SUBSCRIBER_IDS
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        for row in conn.execute(lookup, {"external_ids": chunk}):
            subscribers[row.external_id] = row

    recipients: dict[int, list[Any]] = {}
    for event_id, _ in events:
        present = (subscribers.get(external_id) for external_id in listed[event_id])
        recipients[event_id] = list({r.subscriber_id: r for r in present if r is not None}.values())
    # A pending event has no notifications yet (fan-out is one transaction, and
    # PostgreSQL holds the events' row locks), so what the inserts return is all.
    notifications = insert_ignore(
        session,
        Notification,
        [
            {
                "event_id": event_id,
                "subscriber_id": row.subscriber_id,
                "type": event.type,
                "category": types[event_id].category,
                "priority": event.priority,
                "created_at": now,
            }
            for event_id, event in events
            for row in recipients[event_id]
        ],
        returning=(
            _NOTIFICATIONS.c.id,
            _NOTIFICATIONS.c.event_id,
            _NOTIFICATIONS.c.subscriber_id,
        ),
    )
    event_of = {nid: event_id for nid, event_id, _ in notifications}
    external_of = {row.subscriber_id: row.external_id for row in subscribers.values()}
    # The actor caused the event: their notification exists (``explain`` shows why it
    # went nowhere) but every delivery of it is skipped, unless the type says otherwise.
    by_actor = {
        nid
        for nid, event_id, sid in notifications
        if by_id[event_id].actor is not None
        and external_of.get(sid) == by_id[event_id].actor
        and not types[event_id].notify_actor
    }
    lease_until = now + deliverer.lease if deliverer is not None else None
    ticket = deliverer.ticket() if deliverer is not None and inline else None
    due = sorted(
        insert_ignore(
            session,
            Delivery,
            [
                {
                    "notification_id": nid,
                    "channel": channel,
                    "priority": Priority(by_id[event_id].priority),
                    "scheduled_for": now,
                    "created_at": now,
                    "updated_at": now,
                    # Inline deliveries are claimed as they are inserted: this is their
                    # first attempt.
                    **_first_state(nid in by_actor, event_id in inline, lease_until, ticket),
                }
                for nid, event_id, _ in notifications
                for channel in types[event_id].channels
            ],
            returning=(_DELIVERIES.c.id, _DELIVERIES.c.notification_id, _DELIVERIES.c.channel),
        )
    )
    if not marked:
        event_ids = [event_id for event_id, _ in events]
        conn.execute(_MARK_FANNED_OUT, {"event_ids": event_ids, "now": now})

    facts = {
        event_id: EventFacts(
            event_id, event.type, event.payload, Priority(event.priority), now, event.actor
        )
        for event_id, event in events
        if event_id in inline
    }
    subscriber_of = {nid: sid for nid, _, sid in notifications}
    by_subscriber_id = {row.subscriber_id: row for row in subscribers.values()}
    claimed: list[NewDelivery] = []
    expanded = _Expanded(results=list(refused), to_ring={}, refused=refused)
    for event_id, outcome in bulk.items():
        expanded.pings.extend(outcome.pings)
        for channel, ids in outcome.to_ring.items():
            kind = (Priority(by_id[event_id].priority), False, channel)
            expanded.to_ring.setdefault(kind, []).extend(ids)
            expanded.ring_types.setdefault(kind, set()).add(by_id[event_id].type)
    for did, nid, channel in due:
        if nid in by_actor:
            continue
        event_id = event_of[nid]
        if event_id in inline:
            subscriber = by_subscriber_id[subscriber_of[nid]]
            claimed.append(NewDelivery(facts[event_id], did, nid, channel, subscriber))
        else:
            event = by_id[event_id]
            kind = (Priority(event.priority), event.campaign_id is not None, channel)
            expanded.to_ring.setdefault(kind, []).append(did)
            expanded.ring_types.setdefault(kind, set()).add(event.type)
    if claimed and deliverer is not None:  # (inline is empty without a deliverer)
        expanded.inline = deliverer
        expanded.batch = deliverer.prepare_claimed(session, claimed, now, ticket)
    notified = Counter(event_id for _, event_id, _ in notifications)
    deliveries_of = Counter(event_of[nid] for _, nid, _ in due if nid not in by_actor)
    for event_id, event in events:
        done = bulk.get(event_id, _NOTHING_IN_BULK)
        expanded.results.append(
            FanoutResult(
                event_id,
                notified[event_id] + done.created,
                deliveries_of[event_id] + done.deliveries,
                len(event.recipients) - len(recipients[event_id]) - done.created,
                True,
            )
        )
    return expanded


_NOTHING_IN_BULK = BulkOutcome()


def _in_bulk(
    conn: Connection,
    in_bulk: BulkFanout | None,
    events: Sequence[tuple[int, Any]],
    types: dict[int, Any],
    inline: set[int],
    now: datetime,
) -> dict[int, BulkOutcome]:
    """Fan the large events out set-based where they can be; what each did."""
    if in_bulk is None:
        return {}
    postgres = conn.dialect.name == "postgresql"
    done: dict[int, BulkOutcome] = {}
    for event_id, event in events:
        if event_id in inline or len(event.recipients) < in_bulk.threshold:
            continue
        facts = EventFacts(
            event_id, event.type, event.payload, Priority(event.priority), now, event.actor
        )
        outcome = fan_out_in_bulk(conn, postgres, in_bulk, facts, types[event_id], event.recipients)
        if outcome is not None:
            done[event_id] = outcome
    return done


def _first_state(
    by_actor: bool, inline: bool, lease_until: datetime | None, ticket: Ticket | None
) -> dict[str, Any]:
    """How a delivery is inserted: skipped (to the event's actor), claimed (inline, under
    ``ticket``), or pending (the same keys every time: one multi-row insert)."""
    if by_actor:
        return _ACTOR_SKIPPED
    if inline:
        return {
            "status": DeliveryStatus.SENDING,
            "attempts": 1,
            "lease_until": lease_until,
            "claim_token": ticket.token if ticket else None,
            "claimed_by": ticket.owner if ticket else None,
            "reason": None,
            "detail": None,
        }
    return {
        "status": DeliveryStatus.PENDING,
        "attempts": 0,
        "lease_until": None,
        "claim_token": None,
        "claimed_by": None,
        "reason": None,
        "detail": None,
    }


#: What a delivery to the event's own actor is inserted as.
_ACTOR_SKIPPED: dict[str, Any] = {
    "status": DeliveryStatus.SKIPPED,
    "attempts": 0,
    "lease_until": None,
    "claim_token": None,
    "claimed_by": None,
    "reason": Reason.ACTOR.value,
    "detail": "caused the event",
}


def _refuse_unstorable(
    conn: Connection, events: Sequence[tuple[int, Any]], marked: bool = False
) -> tuple[list[tuple[int, Any]], dict[FanoutResult, str]]:
    """Mark ``failed`` the events whose stored data no store can keep as it is (stored
    before ``notify`` refused it: a NUL in a payload string, say), which would fail their
    fan-out or their delivery on every try; return the others, and results for those."""
    kept: list[tuple[int, Any]] = []
    refused: dict[FanoutResult, str] = {}
    for event_id, event in events:
        problem = json_problem(event.payload)
        column = "payload"
        if problem is None:
            problem, column = json_problem(event.recipients), "recipients"
        if problem is None:
            kept.append((event_id, event))
            continue
        path, why = problem
        detail = f"{column}{path}: {why}"
        status = EventStatus.FANNED_OUT if marked else EventStatus.PENDING
        mark_failed(conn, event_id, Reason.INVALID_DATA, detail, from_status=status)
        refused[FanoutResult(event_id, 0, 0, 0, False, failed=True)] = detail
    return kept, refused


#: For :mod:`dispatcher.engine.rehearsal`.
expand = _expand


def _finish(
    expanded: _Expanded, doorbell: Doorbell, batch_size: int, now: datetime
) -> list[FanoutResult]:
    """After the fan-out committed: publish set-based pings, send inline deliveries,
    and ring for the rest."""
    for pings in expanded.pings:
        pings.publish()
    if expanded.inline is not None and expanded.batch is not None:
        sent = expanded.inline.send(expanded.batch, now)
        expanded.results = [r if r.failed else replace(r, sent=sent) for r in expanded.results]
    for (priority, bulk, channel), ids in expanded.to_ring.items():
        types = sorted(expanded.ring_types.get((priority, bulk, channel), ()))
        doorbell.deliver(
            ids, priority, bulk=bulk, batch_size=batch_size, channel=channel, types=types
        )
    for result, detail in expanded.refused.items():
        reason = Reason.INVALID_DATA.value
        log.error("fanout.failed", event_id=result.event_id, reason=reason, error=detail)
    for result in expanded.results:
        if result.failed:
            continue
        log.info(
            "event.fanned_out",
            event_id=result.event_id,
            notifications=result.notifications,
            deliveries=result.deliveries,
            missing=result.missing or None,
        )
    return expanded.results
