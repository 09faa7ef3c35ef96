"""A direct event to many recipients, fanned out set-based: the campaigns' in-app path
(:mod:`dispatcher.engine.bulk_inbox`) over slices of the event's ``to=`` list.

For each slice, in the fan-out's own transaction: the regular members (no preference
rule, no quiet hours of their own) get their notification with its inbox content and
their in-app delivery recorded sent by ``INSERT … SELECT``; their deliveries on the
type's other channels are inserted pending by ``INSERT … SELECT`` and rung, so the
deliverer sends them (and applies every policy) as usual. Content is rendered once per
locale, or, on PostgreSQL, for each member when the templates read the recipient.
Everyone else (rules of their own, the event's actor, a render that fails, a slice whose
templates read the notification, or on SQLite the recipient) is handed back to the
per-recipient fan-out, so each skip, deferral or failure still records its reason.

The event is pending and held by the fan-out (PostgreSQL's row lock, SQLite's writer
lock) while its rows are inserted in one transaction: a crash rolls all of them back and
the event is fanned out again; once it is fanned out a second fan-out finds it done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from dispatcher.catalog import NotificationType
from dispatcher.db.models import Delivery, Notification, Subscriber, table
from dispatcher.engine import bulk_inbox
from dispatcher.engine.bulk_inbox import (
    DELIVERY_COLUMNS,
    IN_APP,
    InboxPlan,
    Pings,
    delivery_rows,
)
from dispatcher.engine.delivery import Deliverer, EventFacts
from dispatcher.engine.members import Audience
from dispatcher.enums import DeliveryStatus

_N = table(Notification)
_D = table(Delivery)
_S = table(Subscriber)


@dataclass(frozen=True)
class BulkFanout:
    """When and how fan-out goes set-based."""

    #: A deliverer whose composer renders once per locale (a
    #: :class:`~dispatcher.engine.render_once.RenderOnceComposer`).
    deliverer: Deliverer
    #: Events with at least this many distinct recipients go set-based (0: never).
    threshold: int
    #: Recipients per ``INSERT … SELECT``.
    slice_size: int = 5000


@dataclass
class BulkOutcome:
    """What the set-based part of one event's fan-out did."""

    #: Notifications it created (each with its in-app delivery, sent).
    created: int = 0
    #: Pending deliveries on the other channels, by channel, to ring.
    to_ring: dict[str, list[int]] = field(default_factory=dict)
    #: Real-time in-app messages, published after the commit.
    pings: list[Pings] = field(default_factory=list)
    #: Recipients (external ids) left to the per-recipient fan-out.
    ordinary: list[str] = field(default_factory=list)

    @property
    def deliveries(self) -> int:
        return self.created + sum(len(ids) for ids in self.to_ring.values())


def fan_out_in_bulk(
    conn: Connection,
    postgres: bool,
    bulk: BulkFanout,
    event: EventFacts,
    notification_type: NotificationType,
    recipients: Sequence[str],
) -> BulkOutcome | None:
    """Fan ``event`` out set-based to the regular members of ``recipients``; None when
    the event does not qualify (too few recipients, no in-app, policies or settings the
    set-based path cannot apply), and the per-recipient fan-out takes it all."""
    if bulk.threshold <= 0 or IN_APP not in notification_type.channels:
        return None
    listed = list(dict.fromkeys(recipients))
    if len(listed) < bulk.threshold:
        return None
    if not bulk_inbox.applies(bulk.deliverer, notification_type):
        return None
    outcome = BulkOutcome()
    if event.actor is not None and event.actor in listed and not notification_type.notify_actor:
        # Their deliveries are skipped with reason ``actor``: the per-recipient way.
        listed.remove(event.actor)
        outcome.ordinary.append(event.actor)
    for start in range(0, len(listed), bulk.slice_size):
        ids = listed[start : start + bulk.slice_size]
        audience = Audience.of_external_ids(ids, postgres)
        # On SQLite the fan-out holds the one writer lock for the whole list: rendering
        # each member there would keep every other writer (``notify`` included) waiting
        # for seconds, so only shared content goes set-based.
        plan = bulk_inbox.plan(
            conn, bulk.deliverer, audience, event, notification_type, render_each=postgres
        )
        if plan is None:
            outcome.ordinary.extend(ids)
            continue
        created, pings = bulk_inbox.store(
            conn, postgres, plan, event, notification_type, fresh=False
        )
        outcome.created += created
        if pings:
            outcome.pings.append(Pings(plan.channel, pings))
        for channel in notification_type.channels:
            if channel != IN_APP:
                outcome.to_ring.setdefault(channel, []).extend(
                    _insert_pending(conn, plan, event, channel)
                )
        if plan.exceptional:
            outcome.ordinary.extend(
                conn.scalars(select(_S.c.external_id).where(_S.c.id.in_(plan.exceptional)))
            )
    return outcome


def _insert_pending(
    conn: Connection, plan: InboxPlan, event: EventFacts, channel: str
) -> list[int]:
    """The regular members' deliveries on ``channel``, pending as the per-recipient
    fan-out inserts them; returns their ids."""
    rows = delivery_rows(
        _N.c.id, channel, event.priority, DeliveryStatus.PENDING, event.created_at
    ).where(
        _N.c.event_id == event.id,
        *plan.audience.limit(_N.c.subscriber_id),
        _N.c.subscriber_id.not_in(plan.exceptional),
    )
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserting = dialect.insert(_D).on_conflict_do_nothing()
    statement = inserting.from_select(DELIVERY_COLUMNS, rows).returning(_D.c.id)
    return sorted(conn.scalars(statement))
