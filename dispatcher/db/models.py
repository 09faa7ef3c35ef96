"""The tables. The database is the truth; a broker message only points at a row here."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Constraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import conv

from dispatcher.clock import utcnow
from dispatcher.db.types import StrEnumType, UTCDateTime
from dispatcher.enums import DeliveryStatus, EventStatus, Priority
from dispatcher.errors import ConfigurationError

#: Integer primary keys: BIGINT on PostgreSQL, INTEGER (rowid alias) on SQLite.
PK = BigInteger().with_variant(Integer, "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


_prefix: str | None = None


def use_table_prefix(prefix: str) -> None:
    """Name every table ``<prefix><name>`` (``dispatcher_events``…), so that they can
    live in an app's database beside its own; their indexes and constraints are
    prefixed the same way, as are the names the migrations create (through
    :func:`prefixed`). One prefix per process: the tables are module-level objects,
    renamed here before any statement is compiled.

    Raises:
        ConfigurationError: this process already uses another prefix.
    """
    global _prefix
    if _prefix == prefix:
        return
    if _prefix is not None:
        raise ConfigurationError(
            f"DISPATCHER_TABLE_PREFIX: this process already uses {_prefix!r}; "
            "one table prefix per process"
        )
    if prefix:
        for each in Base.metadata.tables.values():
            each.name = each.fullname = prefix + each.name
            named: list[Index | Constraint] = [*each.indexes, *each.constraints]
            for item in named:
                if isinstance(item.name, str) and item.name:
                    item.name = conv(prefix + item.name)
    _prefix = prefix


def prefixed(name: str) -> str:
    """``name`` (a table, index or constraint) with the process's table prefix."""
    return (_prefix or "") + name


def table(model: type[Base]) -> Table:
    """The Core table of ``model``, for prebuilt statements on hot paths."""
    return cast(Table, model.__table__)


class Subscriber(Base):
    """A person who can receive notifications, known to the app by ``external_id``."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PushSubscription(Base):
    """One browser or device that accepts web push for a subscriber."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    endpoint: Mapped[str] = mapped_column(String(2048), unique=True)
    p256dh: Mapped[str] = mapped_column(String(255))
    auth: Mapped[str] = mapped_column(String(255))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_success_at: Mapped[datetime | None]
    #: Who had this browser before its last move to ``subscriber_id`` (someone else
    #: logged in on it), and when it moved; the log line ``push.subscription_moved``
    #: keeps the whole history.
    moved_from_subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL")
    )
    moved_at: Mapped[datetime | None]


class Preference(Base):
    """One opt-in/opt-out rule; the most specific rule for a delivery wins.

    ``scope`` is ``all``, ``category`` or ``type``; ``scope_value`` names the category or
    type ("" for ``all``); ``channel`` is a channel name or ``*`` for every channel.
    """

    __tablename__ = "preferences"
    __table_args__ = (UniqueConstraint("subscriber_id", "scope", "scope_value", "channel"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(16))
    scope_value: Mapped[str] = mapped_column(String(128), default="")
    channel: Mapped[str] = mapped_column(String(32), default="*")
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QuietHoursWindow(Base):
    """A window in the subscriber's local time during which push and email wait.

    ``days`` lists the local weekdays the window *starts* on (Monday = 0); a window
    with ``start > end`` crosses midnight.
    """

    __tablename__ = "quiet_hours"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    start: Mapped[time] = mapped_column(Time)
    end: Mapped[time] = mapped_column(Time)
    days: Mapped[str] = mapped_column(String(7), default="0123456")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TemplateVersion(Base):
    """An operator's override of one template part; the newest active version wins."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("type", "channel", "locale", "part", "version"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(35))
    part: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    """A bulk send to an audience, started by beat at ``start_at`` (or on a cron)."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(128))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    audience: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[Priority] = mapped_column(StrEnumType(Priority), default=Priority.LOW)
    start_at: Mapped[datetime | None]
    cron: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    cursor: Mapped[int] = mapped_column(PK, default=0)
    totals: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    #: Channels to send on (None: the type's default channels).
    channels: Mapped[list[Any] | None] = mapped_column(JSON(), nullable=True)
    #: Channel name -> messages per minute (providers' limits); absent: as fast as it goes.
    send_rates: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    #: The IANA zone ``cron`` is read in.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    #: No run starts at or after this instant.
    end_at: Mapped[datetime | None]
    #: When beat starts the next run (claimed with a conditional update); None: no more.
    next_run_at: Mapped[datetime | None] = mapped_column(index=True)
    #: The key of the campaign's own templates (:class:`CampaignTemplate`), a random
    #: token never reused; None: the type's templates are the content.
    content: Mapped[str | None] = mapped_column(String(40))


class CampaignTemplate(Base):
    """One part of a campaign's own templates, saved with the campaign and never changed."""

    __tablename__ = "campaign_templates"
    __table_args__ = (UniqueConstraint("campaign_id", "channel", "locale", "part"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(PK, ForeignKey("campaigns.id", ondelete="CASCADE"))
    #: The campaign's ``content`` key: what the renderer loads them by.
    content: Mapped[str] = mapped_column(String(40), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    locale: Mapped[str] = mapped_column(String(35))
    part: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Segment(Base):
    """A named, reusable audience: a filter on subscriber attributes, evaluated when a
    run that names it starts."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignRun(Base):
    """One send of a campaign: its audience, resolved when it starts, and its cursor."""

    __tablename__ = "campaign_runs"
    __table_args__ = (UniqueConstraint("campaign_id", "occurrence"),)

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(
        PK, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    #: The instant this run stands for (its schedule's occurrence, or when it was started):
    #: unique per campaign, so two beats cannot start the same occurrence twice.
    occurrence: Mapped[datetime]
    #: The run's event: its notifications and deliveries hang off it.
    event_id: Mapped[int | None] = mapped_column(PK, ForeignKey("events.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="running")
    #: Highest subscriber id whose chunk is committed.
    cursor: Mapped[int] = mapped_column(PK, default=0)
    #: Audience size when the run started, and notifications created so far.
    targeted: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    #: Deliveries created so far per send-rate-limited channel (their pacing).
    paced: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignAudience(Base):
    """Who a run targets, recorded when it starts: plain ids, no foreign keys (a key
    costs PostgreSQL a trigger per inserted row, nine times the insert itself here; a
    subscriber deleted mid-run is dropped by the chunk's join with subscribers)."""

    __tablename__ = "campaign_audiences"

    run_id: Mapped[int] = mapped_column(PK, primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(PK, primary_key=True)


class Event(Base):
    """Something that happened in the app, as passed to ``notify``."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_status_send_at", "status", "send_at"),
        #: Campaign progress (metrics, analytics) finds a campaign's events.
        Index("ix_events_campaign_id", "campaign_id"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    recipients: Mapped[list[Any]] = mapped_column(default=list)
    priority: Mapped[Priority] = mapped_column(StrEnumType(Priority))
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    send_at: Mapped[datetime]
    status: Mapped[EventStatus] = mapped_column(
        StrEnumType(EventStatus), default=EventStatus.PENDING
    )
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    fanned_out_at: Mapped[datetime | None]
    #: Times fan-out failed on this event alone; at a bound, it is marked ``failed``.
    fanout_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Why it ``failed`` (a :class:`~dispatcher.enums.Reason`), and what happened, as
    #: error classes and field positions, never the event's data.
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(255))
    #: Who caused it (a subscriber id, ``notify(actor=...)``); not notified by default.
    actor: Mapped[str | None] = mapped_column(String(255))

    notifications: Mapped[list[Notification]] = relationship(back_populates="event")


class Notification(Base):
    """One event for one subscriber; with in-app content it is an inbox item."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "subscriber_id"),
        Index("ix_notifications_inbox", "subscriber_id", "id"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(64))
    priority: Mapped[Priority] = mapped_column(StrEnumType(Priority))
    title: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the in-app delivery stored it in the inbox; NULL means not in the inbox yet.
    inbox_at: Mapped[datetime | None]
    seen_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]

    event: Mapped[Event] = relationship(back_populates="notifications")
    subscriber: Mapped[Subscriber] = relationship()
    deliveries: Mapped[list[Delivery]] = relationship(back_populates="notification")


class Delivery(Base):
    """One notification on one channel: the unit a worker claims, sends and records."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel"),
        Index("ix_deliveries_due", "status", "scheduled_for"),
        #: Analytics and metrics read a window of recent deliveries.
        Index("ix_deliveries_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    priority: Mapped[Priority] = mapped_column(StrEnumType(Priority))
    status: Mapped[DeliveryStatus] = mapped_column(
        StrEnumType(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    scheduled_for: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]
    #: The claim's fencing token: status writes of a claim count only while it matches.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    #: The process holding the claim (``host:pid``), whose liveness the sweep checks.
    claimed_by: Mapped[str | None] = mapped_column(String(255))

    notification: Mapped[Notification] = relationship(back_populates="deliveries")
    steps: Mapped[list[DeliveryStep]] = relationship(
        back_populates="delivery", order_by="DeliveryStep.id"
    )


class DeliveryStep(Base):
    """One decision or attempt on a delivery, for ``explain``."""

    __tablename__ = "delivery_steps"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[DeliveryStatus] = mapped_column(StrEnumType(DeliveryStatus))
    reason: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)

    delivery: Mapped[Delivery] = relationship(back_populates="steps")


class Click(Base):
    """One follow of a tracked link in a delivered email or push (``/c/{token}``)."""

    __tablename__ = "clicks"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    #: The link's target, as signed in the token.
    url: Mapped[str] = mapped_column(Text)
    clicked_at: Mapped[datetime] = mapped_column(default=utcnow)


class DigestWindow(Base):
    """Deliveries of one type to one subscriber on one channel, gathered to be sent as
    one message when the window closes (see :mod:`dispatcher.policies.digest`)."""

    __tablename__ = "digest_windows"
    __table_args__ = (
        #: One open window per (subscriber, type, channel): concurrent first items
        #: cannot open two.
        Index(
            "ix_digest_windows_open",
            "subscriber_id",
            "type",
            "channel",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_digest_windows_due", "status", "closes_at"),
    )

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(32))
    #: ``open`` (gathering), ``flushed`` (its digest is on its way), ``dropped`` (its
    #: digest delivery was skipped, e.g. the subscriber opted out).
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closes_at: Mapped[datetime]
    flushed_at: Mapped[datetime | None]
    #: The delivery that carries the digest (the window's first item): unique, so a
    #: window is sent by exactly one delivery.
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), unique=True
    )
    #: How many deliveries the window holds.
    item_count: Mapped[int] = mapped_column(Integer, default=0)


class DigestItem(Base):
    """One delivery gathered into a digest window; a delivery is in at most one."""

    __tablename__ = "digest_items"

    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True
    )
    window_id: Mapped[int] = mapped_column(
        ForeignKey("digest_windows.id", ondelete="CASCADE"), index=True
    )
