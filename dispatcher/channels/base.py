"""The interface every channel implements.

A channel turns rendered messages into deliveries on one medium (in-app, web push,
email). It implements :meth:`Channel.send`; everything else has a sensible default.
The provider that carries the messages (an SMTP server, a push service) is the
channel's own business, configured from its settings group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from dispatcher.enums import Priority
from dispatcher.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from dispatcher.subscribers.recipient import Recipient

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dispatcher.catalog import NotificationType
    from dispatcher.db.engine import Store
    from dispatcher.settings import Settings


@dataclass(frozen=True)
class Message:
    """One delivery, rendered and ready for a channel."""

    delivery_id: int
    notification_id: int
    event_id: int
    type: NotificationType
    priority: Priority
    recipient: Recipient
    #: Rendered template parts, e.g. ``{"title": ..., "body": ...}``.
    content: Mapping[str, str]
    #: The event's validated payload.
    data: Mapping[str, Any]
    #: 1 on the first try.
    attempt: int
    created_at: datetime
    #: False when the subscriber is in quiet hours: store, but do not ping.
    realtime: bool = True
    #: Who caused the event (``notify(actor=...)``), if the app said.
    actor: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one message. ``error`` is None when the provider accepted it."""

    delivery_id: int
    error: DeliveryError | None = None
    provider_id: str | None = None
    detail: str | None = None

    @classmethod
    def sent(
        cls,
        delivery_id: int,
        *,
        provider_id: str | None = None,
        detail: str | None = None,
    ) -> Outcome:
        return cls(delivery_id, None, provider_id, detail)

    @classmethod
    def failed(cls, delivery_id: int, error: DeliveryError) -> Outcome:
        return cls(delivery_id, error)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def transient(self) -> bool:
        return isinstance(self.error, TransientDeliveryError)

    @property
    def permanent(self) -> bool:
        return isinstance(self.error, PermanentDeliveryError) or (
            self.error is not None and not self.transient
        )


@dataclass(frozen=True)
class ChannelContext:
    """What the dispatcher hands a channel when it creates it."""

    settings: Settings
    store: Store
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter for transient failures."""

    max_attempts: int = 8
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0


class Channel:
    """Base class for a delivery channel.

    Subclasses set :attr:`name` and :attr:`parts`, and implement :meth:`send`. What a
    channel needs from the rest of the system is declared here as class attributes, so
    nothing outside the channel's module names it: the address it sends to
    (:attr:`address_kind`), how quiet hours treat it (:attr:`stores_silently`), and
    whether its delivery is a database write (:attr:`stores_in_transaction`). Channels
    never write delivery statuses: they return :class:`Outcome` values and the
    deliverer records them.
    """

    #: Registry key and the ``channel`` value stored on deliveries.
    name: ClassVar[str]
    #: The kind of address a recipient needs on this channel (``"email"``, ``"phone"``;
    #: see :meth:`Recipient.address`). None: the channel finds its own addresses (push
    #: devices) or needs none (in-app).
    address_kind: ClassVar[str | None] = None
    #: True for a channel that can deliver without disturbing anyone (in-app stores
    #: the notification and only skips the real-time ping). Quiet hours then silence
    #: its deliveries instead of deferring them.
    stores_silently: ClassVar[bool] = False
    #: Template parts this channel renders (``templates/<type>/<locale>/<name>/<part>.j2``).
    parts: ClassVar[tuple[str, ...]] = ()
    #: Parts that may be missing from a template set.
    optional_parts: ClassVar[tuple[str, ...]] = ()
    #: Parts whose links click tracking rewrites (``DISPATCHER_CLICK_TRACKING``), and
    #: how: ``"html"`` (``href`` attributes), ``"text"`` (bare URLs) or ``"url"`` (the
    #: part is one URL). See :mod:`dispatcher.channels.clicks`.
    link_parts: ClassVar[Mapping[str, str]] = {}
    #: True for a channel whose delivery is a database write (in-app). The deliverer
    #: then calls :meth:`store` inside its own transaction, so claiming, deciding,
    #: storing and recording commit at once, and :meth:`announce` after the commit.
    stores_in_transaction: ClassVar[bool] = False

    def __init__(self, context: ChannelContext) -> None:
        self.context = context
        self.settings = context.settings

    def is_configured(self) -> bool:
        """Whether the channel has what it needs to send; otherwise deliveries are
        skipped with reason ``channel_not_configured``."""
        return True

    @property
    def retry_policy(self) -> RetryPolicy:
        """How transient failures are retried on this channel."""
        return RetryPolicy()

    @property
    def in_flight(self) -> int:
        """How many messages :meth:`send` has on the wire at once (connections,
        concurrent requests). The deliverer records outcomes after every group of this
        many, so a process killed mid-batch leaves at most this many sent but unrecorded."""
        return 1

    def begin_batch(self) -> None:
        """Called before one claimed batch is sent (in groups of :attr:`in_flight`, one
        :meth:`send` each): a channel keeps what it learns across those groups (a push
        service that stopped answering) until :meth:`end_batch`. No-op by default."""

    def end_batch(self) -> None:
        """Called after the batch :meth:`begin_batch` announced. No-op by default."""

    def address_missing(self, recipient: Recipient) -> bool:
        """Whether the recipient has no address on this channel (no email, no device);
        by default, whether they lack an address of :attr:`address_kind`."""
        return self.address_kind is not None and not recipient.address(self.address_kind)

    def missing_addresses(self, recipients: Sequence[Recipient], session: Session) -> set[int]:
        """The ids of ``recipients`` with no address on this channel, for a whole batch.

        Override this instead of :meth:`address_missing` when the answer needs a query
        (push devices), so a batch costs one query rather than one per recipient. Query
        with ``session`` (the deliverer's): on SQLite a second session would wait for
        the first one's write lock.
        """
        return {r.id for r in recipients if self.address_missing(r)}

    def template_context(
        self, recipient: Recipient, type: NotificationType, notification_id: int
    ) -> Mapping[str, Any]:
        """Extra variables this channel's templates see (e.g. an unsubscribe link)."""
        return {}

    async def open(self) -> None:
        """Prepare connections; called once per worker process before the first send."""

    async def close(self) -> None:
        """Release connections; called when the worker process shuts down."""

    def warm(self) -> None:
        """Open what the first batch would otherwise open, before a worker process
        takes work (so its first message is not slower than the next). Best effort: an
        error here is logged and the first batch opens it instead. No-op by default."""

    def store(self, session: Session, messages: Sequence[Message]) -> Sequence[Outcome]:
        """Deliver a batch by writing it with ``session`` (see
        :attr:`stores_in_transaction`); the caller records the outcomes in the same
        session and commits."""
        raise NotImplementedError(f"channel {self.name!r} does not store in a transaction")

    def announce(self, messages: Sequence[Message]) -> None:
        """After :meth:`store` committed: tell the world (e.g. ping open sockets).

        Synchronous and quick: it runs on the hot path of every in-app notification,
        where a trip through the event loop would cost more than the ping.
        """

    async def send(self, messages: Sequence[Message]) -> Sequence[Outcome]:
        """Deliver a batch; return one :class:`Outcome` per message, in any order.

        Failures of single messages are outcomes, not exceptions; an exception means the
        whole batch failed transiently and will be retried.
        """
        raise NotImplementedError
