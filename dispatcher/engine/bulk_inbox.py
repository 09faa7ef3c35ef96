"""In-app for a whole chunk at once: inbox rows written by ``INSERT … SELECT`` with their
content, deliveries recorded sent in the same transaction, pings built without a
message object per recipient. A chunk is a campaign run's slice of its audience or a
slice of a direct event's ``to=`` list (a :class:`~dispatcher.engine.members.Audience`
says which).

This is the set-based form of what the deliverer does for each in-app delivery, and it
decides the same way. It applies to recipients the policies cannot hold back: with the
default policies, in-app for a type with no in-app rate limit and no collapsing, that is
everyone who has no preference rule and no quiet hours of their own (in-app is then
on by the type's defaults, and it is never deferred). Content is rendered once per
locale, or, when the templates read the recipient, for each member in Python and read
back as a table (:mod:`dispatcher.engine.inbox_content`). Those who have rules, a
member whose render fails, a chunk whose templates read the notification (its id is
not known before the insert), or policies of the app's own, go the ordinary way
(claimed, decided and stored by the deliverer), so every skip still records its reason.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    Text,
    case,
    func,
    insert,
    literal,
    null,
    select,
    text,
    union,
)
from sqlalchemy.dialects import postgresql, sqlite

from dispatcher.catalog import NotificationType
from dispatcher.channels.in_app import InAppChannel
from dispatcher.db.models import (
    CampaignAudience,
    Delivery,
    Notification,
    Preference,
    QuietHoursWindow,
    Subscriber,
    table,
)
from dispatcher.db.types import UTCDateTime
from dispatcher.engine import inbox_content
from dispatcher.engine.delivery import Deliverer, EventFacts
from dispatcher.engine.members import Audience
from dispatcher.engine.render_once import RenderOnceComposer
from dispatcher.enums import DeliveryStatus, Priority
from dispatcher.errors import TemplateError
from dispatcher.policies import (
    CollapsePolicy,
    DigestPolicy,
    PreferencePolicy,
    QuietHoursPolicy,
    RateLimitPolicy,
)

_A = table(CampaignAudience)
_S = table(Subscriber)
_N = table(Notification)
_D = table(Delivery)
_P = table(Preference)
_Q = table(QuietHoursWindow)
#: The policies whose in-app decisions this module knows how to make for a whole set
#: (the digest policy never holds in-app: a type cannot digest it).
KNOWN_POLICIES = (PreferencePolicy, QuietHoursPolicy, CollapsePolicy, DigestPolicy, RateLimitPolicy)
IN_APP = "in_app"


@dataclass
class InboxPlan:
    """What a chunk's set-based in-app needs: content per locale, and who is left out."""

    channel: InAppChannel
    default_locale: str
    audience: Audience
    #: locale -> part -> text.
    content: dict[str, dict[str, str]]
    #: Subscriber ids with rules of their own: they go the ordinary way.
    exceptional: list[int] = field(default_factory=list)
    #: Set when the templates read the recipient: each member's content is rendered
    #: with it (into ``each``, by subscriber id) instead of once per locale.
    render_each: RenderOnceComposer | None = None
    each: dict[int, dict[str, str]] = field(default_factory=dict)

    def locale(self) -> ColumnElement[Any]:
        return func.coalesce(_S.c.locale, literal(self.default_locale, String()))

    def part(self, name: str) -> ColumnElement[Any]:
        whens = {
            loc: literal(parts.get(name) or None, Text())
            for loc, parts in self.content.items()
            if parts.get(name)
        }
        if not whens:
            return null()
        return case(whens, value=self.locale(), else_=null())

    def members(self) -> list[ColumnElement[bool]]:
        """The ``WHERE`` of the chunk's regular members."""
        return [*self.audience.where, self.audience.member.not_in(self.exceptional)]


def applies(deliverer: Deliverer, notification_type: NotificationType) -> bool:
    """Whether in-app of this type may go set-based with this deliverer at all: its
    in-app channel is configured, its composer renders once, it knows every policy, and
    the type neither rate-limits in-app nor collapses."""
    channel = deliverer.channels.get(IN_APP)
    if not isinstance(channel, InAppChannel) or not channel.is_configured():
        return False
    if not isinstance(deliverer.composer, RenderOnceComposer):
        return False
    if any(type(p) not in KNOWN_POLICIES for p in deliverer.policies.policies):
        return False
    return IN_APP not in notification_type.rate_limits and not notification_type.collapse_deferred


def plan(
    conn: Connection,
    deliverer: Deliverer,
    audience: Audience,
    event: EventFacts,
    notification_type: NotificationType,
    *,
    render_each: bool = True,
) -> InboxPlan | None:
    """The :class:`InboxPlan` of a chunk, or None when in-app must go the ordinary way
    (also when the templates read the recipient, unless ``render_each``)."""
    channel = deliverer.channels.get(IN_APP)
    composer = deliverer.composer
    if not applies(deliverer, notification_type):
        return None
    if not isinstance(channel, InAppChannel) or not isinstance(composer, RenderOnceComposer):
        return None  # (applies() said so already; this tells the type checker)
    exceptional = sorted(
        conn.scalars(
            union(
                select(_P.c.subscriber_id).where(*audience.limit(_P.c.subscriber_id)),
                select(_Q.c.subscriber_id).where(*audience.limit(_Q.c.subscriber_id)),
            )
        )
    )
    default_locale = deliverer.default_locale
    result = InboxPlan(channel, default_locale, audience, {}, exceptional)
    first_of = (
        select(_S.c.locale, func.min(_S.c.id))
        .select_from(audience.source)
        .where(*audience.where)
        .group_by(_S.c.locale)
    )
    samples: dict[str, int] = {}
    for loc, sid in conn.execute(first_of):
        samples.setdefault(loc or default_locale, sid)
    if not samples:
        return result
    people = conn.execute(
        select(_S.c.id, _S.c.external_id, _S.c.email, _S.c.attributes, _S.c.timezone).where(
            _S.c.id.in_(list(samples.values()))
        )
    ).all()
    by_id = {p.id: p for p in people}
    for loc, sid in samples.items():
        recipient = inbox_content.recipient(by_id[sid], loc)
        row = inbox_content.row_for(recipient, event, notification_type)
        if composer.varies(row, channel):
            if not render_each or composer.needs_notification(row, channel):
                return None
            result.render_each = composer
            result.content.clear()
            return result
        try:
            result.content[loc] = composer.render(row, channel)
        except TemplateError:
            return None  # the ordinary way records the failure on each delivery
    return result


def notifications_select(
    plan: InboxPlan, event: EventFacts, notification_type: NotificationType
) -> Select[Any]:
    """The chunk's regular members as notification rows with their inbox content."""
    now = event.created_at
    return (
        select(
            literal(event.id),
            plan.audience.member,
            literal(event.type, String()),
            literal(notification_type.category, String()),
            literal(event.priority.value, String()),
            literal(now, UTCDateTime()),
            plan.part("title"),
            plan.part("body"),
            plan.part("url"),
            literal(now, UTCDateTime()),
        )
        .select_from(plan.audience.source)
        .where(*plan.members())
    )


NOTIFICATION_COLUMNS = [
    "event_id",
    "subscriber_id",
    "type",
    "category",
    "priority",
    "created_at",
    "title",
    "body",
    "url",
    "inbox_at",
]
DELIVERY_COLUMNS = [
    "notification_id",
    "channel",
    "priority",
    "status",
    "attempts",
    "scheduled_for",
    "lease_until",
    "sent_at",
    "created_at",
    "updated_at",
]


def delivery_rows(
    notification_id: Any,
    channel: str,
    priority: Priority,
    status: DeliveryStatus,
    now: datetime,
    *,
    lease_until: datetime | None = None,
) -> Select[Any]:
    """Delivery rows (:data:`DELIVERY_COLUMNS`) on ``channel`` for ``notification_id``
    (a column): pending (no attempt yet), claimed (``sending``, first attempt, until
    ``lease_until``), or sent in the chunk's own transaction."""
    sent = status is DeliveryStatus.SENT
    return select(
        notification_id,
        literal(channel, String()),
        literal(priority.value, String()),
        literal(status.value, String()),
        literal(0 if status is DeliveryStatus.PENDING else 1),
        literal(now, UTCDateTime()),
        literal(lease_until, UTCDateTime()),
        literal(now if sent else None, UTCDateTime()),
        literal(now, UTCDateTime()),
        literal(now, UTCDateTime()),
    )


_SENT = DeliveryStatus.SENT
_NO_NESTED_LOOPS = text("SET LOCAL enable_nestloop = off")


def store(
    conn: Connection,
    postgres: bool,
    plan: InboxPlan,
    event: EventFacts,
    notification_type: NotificationType,
    *,
    fresh: bool = True,
) -> tuple[int, list[tuple[str, str]]]:
    """Create the chunk's regular members' notifications with their inbox content and
    their in-app deliveries (sent); returns how many, and their pings.

    When ``fresh``, plain inserts, not ``ON CONFLICT DO NOTHING``: a campaign chunk holds
    its run's lock and moves the cursor past these ids in the same transaction, so no
    row of theirs can exist yet, and a speculative insert per row costs about a third
    more on PostgreSQL. A direct event's fan-out is not ``fresh``: an event set back to
    pending may be fanned out again, and creates nothing new.
    On PostgreSQL it is one statement: the inserts chained through ``RETURNING`` in
    common table expressions, returning what the pings need.
    """
    priority, now = event.priority, event.created_at
    composer = plan.render_each
    rows_select = (
        _rendered_select(conn, postgres, plan, composer, event, notification_type)
        if composer is not None
        else notifications_select(plan, event, notification_type)
    )
    if postgres:
        # With statistics from before a bulk load (a table that held 10,000 subscribers
        # an hour ago), the planner took the join of the inserted rows with subscribers
        # for a few rows and nested it over the CTE: 1.1 s a chunk instead of 0.17 s.
        # Every join here is a whole chunk's, so hash joins are always the right ones.
        conn.execute(_NO_NESTED_LOOPS)
        created = (
            _insert(_N, fresh, postgres)
            .from_select(NOTIFICATION_COLUMNS, rows_select)
            .returning(_N.c.id, _N.c.subscriber_id)
            .cte("created")
        )
        deliveries = (
            _insert(_D, fresh, postgres)
            .from_select(
                DELIVERY_COLUMNS, delivery_rows(created.c.id, IN_APP, priority, _SENT, now)
            )
            .cte("delivered")
        )
        rows = conn.execute(
            select(created.c.id, _S.c.external_id, plan.locale(), created.c.subscriber_id)
            .join(_S, _S.c.id == created.c.subscriber_id)
            .where(*plan.audience.limit(_S.c.id))
            .add_cte(deliveries)
        ).all()
        return len(rows), _pings(plan, event, notification_type, rows)
    result = conn.execute(
        _insert(_N, fresh, postgres).from_select(NOTIFICATION_COLUMNS, rows_select),
        execution_options={"preserve_rowcount": True},
    )
    in_chunk = [
        _N.c.event_id == event.id,
        *plan.audience.limit(_N.c.subscriber_id),
        _N.c.subscriber_id.not_in(plan.exceptional),
    ]
    if not fresh:
        in_chunk.append(_N.c.created_at == literal(now, UTCDateTime()))  # not earlier ones
    conn.execute(
        _insert(_D, fresh, postgres).from_select(
            DELIVERY_COLUMNS, delivery_rows(_N.c.id, IN_APP, priority, _SENT, now).where(*in_chunk)
        )
    )
    rows = conn.execute(
        select(_N.c.id, _S.c.external_id, plan.locale(), _N.c.subscriber_id)
        .join(_S, _S.c.id == _N.c.subscriber_id)
        .where(*in_chunk, *plan.audience.limit(_S.c.id))
    ).all()
    return max(result.rowcount or 0, 0), _pings(plan, event, notification_type, rows)


def _insert(target: Any, fresh: bool, postgres: bool) -> Any:
    if fresh:
        return insert(target)
    dialect = postgresql if postgres else sqlite
    return dialect.insert(target).on_conflict_do_nothing()


def _pings(
    plan: InboxPlan,
    event: EventFacts,
    notification_type: NotificationType,
    rows: Sequence[Any],
) -> list[tuple[str, str]]:
    """The chunk's regular members' real-time messages, ready to publish."""

    def content(sid: int, locale: str) -> tuple[Hashable, Mapping[str, str]]:
        if plan.render_each is not None:
            return sid, plan.each[sid]
        return locale, plan.content[locale]

    return inbox_content.pings(event, notification_type, rows, content)


def _rendered_select(
    conn: Connection,
    postgres: bool,
    plan: InboxPlan,
    composer: RenderOnceComposer,
    event: EventFacts,
    notification_type: NotificationType,
) -> Select[Any]:
    """Render each regular member's content (those whose render fails join the
    exceptional), and select their notification rows from it."""
    members = (
        select(
            plan.audience.member.label("id"),
            _S.c.external_id,
            _S.c.email,
            _S.c.attributes,
            _S.c.timezone,
            plan.locale().label("locale"),
        )
        .select_from(plan.audience.source)
        .where(*plan.members())
    )
    rows, plan.each, failed = inbox_content.rendered_select(
        conn, postgres, composer, plan.channel, members, event, notification_type
    )
    plan.exceptional.extend(failed)
    return rows


@dataclass(frozen=True)
class Pings:
    """A chunk's real-time in-app messages, published after its commit in one pipeline."""

    channel: InAppChannel
    messages: list[tuple[str, str]]

    def publish(self) -> None:
        self.channel.publish(self.messages)
