"""The :class:`Dispatcher`: the one object an app talks to."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from dispatcher.catalog import Catalog, NotificationType, default_catalog
from dispatcher.channels.base import ChannelContext
from dispatcher.channels.runtime import ChannelRuntime
from dispatcher.db.engine import Store
from dispatcher.delivery import Deliverer, DeliverReport
from dispatcher.doorbell import Doorbell, Latch
from dispatcher.drain import DrainResult, drain
from dispatcher.enums import Priority
from dispatcher.errors import ConfigurationError
from dispatcher.explain import Explanation, explain
from dispatcher.fanout import FanoutResult, fanout
from dispatcher.inbox import Inbox, InboxItem
from dispatcher.outbox import EventReceipt, Outbox
from dispatcher.policies import default_policies
from dispatcher.policy import Policy, PolicyChain
from dispatcher.preferences import Preferences
from dispatcher.purge import PurgeResult, purge
from dispatcher.push_subscriptions import PushSubscriptions
from dispatcher.quiet_hours import QuietHours
from dispatcher.rate_limiter import RateLimiter
from dispatcher.render import Renderer
from dispatcher.settings import Settings
from dispatcher.subscribers import Subscribers
from dispatcher.sweep import SweepResult, sweep
from dispatcher.templating.overrides import TemplateOverrides
from dispatcher.templating.versions import Templates

if TYPE_CHECKING:
    from celery import Celery


class Dispatcher:
    """Entry point: register types, manage subscribers, ``notify``, read inboxes.

    One instance per process is enough; it is safe to share between threads that do
    not share a SQLAlchemy session.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.store = Store(self.settings.database_url)
        self.catalog = catalog or default_catalog()
        for module in self.settings.types_modules:
            self._load_types(module)
        self.doorbell = Doorbell(
            self._make_celery,
            Latch(self.settings.redis_url, self.settings.redis_prefix, self.settings.broker_url),
        )
        self.outbox = Outbox(self.store, self.catalog, self.doorbell)
        self.subscribers = Subscribers(self.store)
        self.inbox_store = Inbox(self.store)
        self.preferences = Preferences(self.store, self.catalog)
        self.templates = Templates(
            self.store, self.catalog, lambda: self.renderer, lambda: self.channels
        )
        self.push_subscriptions = PushSubscriptions(self.store, self.settings.push)
        self.quiet_hours = QuietHours(self.store)

    @classmethod
    def from_env(cls, **overrides: Any) -> Dispatcher:
        """A dispatcher configured from ``DISPATCHER_*`` environment variables."""
        return cls(Settings.from_env(**overrides))

    def _load_types(self, module_name: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigurationError(
                f"DISPATCHER_TYPES_MODULES: cannot import {module_name!r}: {exc}"
            ) from exc
        register = getattr(module, "register_types", None)
        if callable(register):
            register(self.catalog)
            return
        for value in vars(module).values():
            if isinstance(value, NotificationType) and value.name not in self.catalog:
                self.catalog.register(value)

    def _make_celery(self) -> Celery:
        from dispatcher.tasks import create_app

        return create_app(self.settings)

    # -- types --------------------------------------------------------------------

    def register(self, notification_type: NotificationType) -> None:
        """Add an app-defined notification type to this dispatcher's catalog."""
        self.catalog.register(notification_type)

    # -- sending ------------------------------------------------------------------

    def notify(
        self,
        type: str,
        *,
        to: str | Iterable[str],
        data: Mapping[str, Any] | None = None,
        priority: Priority | str | None = None,
        idempotency_key: str | None = None,
        send_at: datetime | None = None,
        session: Session | None = None,
    ) -> EventReceipt:
        """Record that ``type`` happened and notify subscribers ``to``.

        Parameters:
            type: A registered notification type.
            to: One subscriber id or several.
            data: The event's payload, validated against the type's schema.
            priority: ``low``, ``medium``, ``high`` or ``urgent``; defaults to the type's.
            idempotency_key: Calls with the same key store one event.
            send_at: Deliver at this instant instead of now (aware datetime).
            session: Join this SQLAlchemy session's transaction (transactional outbox);
                the doorbell rings only after it commits.

        Raises:
            UnknownEventTypeError, PayloadValidationError, UnknownSubscriberError,
            InvalidIdentifierError, ValidationError, IdempotencyConflictError: nothing
            is stored. Ids and keys follow :mod:`dispatcher.validation`'s character set;
            payload values must be ones both stores keep as they are (no NUL).
        """
        return self.outbox.notify(
            type,
            to=to,
            data=data,
            priority=priority,
            idempotency_key=idempotency_key,
            send_at=send_at,
            session=session,
        )

    def inbox(
        self,
        subscriber_id: str,
        *,
        limit: int = 50,
        unread_only: bool = False,
        before_id: int | None = None,
        category: str | None = None,
        type: str | None = None,
        archived: bool | None = False,
    ) -> list[InboxItem]:
        """The subscriber's in-app notifications, newest first."""
        return self.inbox_store.list(
            subscriber_id,
            limit=limit,
            unread_only=unread_only,
            before_id=before_id,
            category=category,
            type=type,
            archived=archived,
        )

    def explain(self, ref: str | int) -> Explanation:
        """What happened to an event, per recipient and channel, and why.

        ``ref`` is an event id (``123`` or ``"e123"``), a notification id (``"n456"``)
        or ``"key:<idempotency key>"``.

        Raises:
            ValidationError: malformed reference.
            NotFoundError: no such event or notification.
        """
        return explain(self.store, ref)

    # -- worker side --------------------------------------------------------------

    def policies(self) -> list[Policy]:
        """The send-time policies, in the order they are checked."""
        return default_policies(self.rate_limiter)

    @cached_property
    def rate_limiter(self) -> RateLimiter:
        import redis

        client = redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        return RateLimiter(client, self.settings.redis_prefix)

    @cached_property
    def renderer(self) -> Renderer:
        folders = [*self.settings.extra_templates_dirs, self.settings.templates_dir]
        return Renderer(
            folders,
            default_locale=self.settings.default_locale,
            overrides=TemplateOverrides(
                self.store, refresh_seconds=self.settings.template_refresh_seconds
            ),
            time_limit=self.settings.template_time_limit_seconds,
        )

    @cached_property
    def channels(self) -> ChannelRuntime:
        return ChannelRuntime(ChannelContext(self.settings, self.store))

    @cached_property
    def deliverer(self) -> Deliverer:
        return Deliverer(
            self.store,
            self.catalog,
            self.renderer,
            self.channels,
            PolicyChain(self.policies()),
            lease=timedelta(seconds=self.settings.lease_seconds),
            default_locale=self.settings.default_locale,
        )

    def run_fanout(self, event_id: int) -> FanoutResult:
        """Fan event ``event_id`` out now, in this process (what ``dispatcher.fanout`` runs)."""
        return fanout(
            self.store,
            self.catalog,
            self.doorbell,
            event_id,
            batch_size=self.settings.delivery_batch_size,
            deliverer=self.deliverer,
            inline_limit=self.settings.inline_delivery_limit,
        )

    def run_drain(
        self,
        priority: Priority | str,
        *,
        bulk: bool = False,
        first: int | None = None,
        holds_latch: bool = True,
    ) -> DrainResult:
        """Fan out event ``first`` and every other due event of ``priority`` (campaign
        events if ``bulk``), in this process (what a draining ``dispatcher.fanout`` runs)."""
        return drain(
            self.store,
            self.catalog,
            self.doorbell,
            Priority(priority),
            bulk=bulk,
            first=first,
            holds_latch=holds_latch,
            batch_size=self.settings.delivery_batch_size,
            deliverer=self.deliverer,
            inline_limit=self.settings.inline_delivery_limit,
        )

    def run_deliver(self, delivery_ids: Iterable[int]) -> DeliverReport:
        """Claim and send deliveries now, in this process (what ``dispatcher.deliver`` runs)."""
        return self.deliverer.deliver(list(delivery_ids))

    def run_sweep(self) -> SweepResult:
        """Re-ring due work now (what ``dispatcher.sweep`` runs)."""
        return sweep(
            self.store,
            self.doorbell,
            grace=timedelta(seconds=self.settings.sweep_grace_seconds),
            batch_size=self.settings.delivery_batch_size,
        )

    def run_purge(self) -> PurgeResult:
        """Delete finished events older than ``retention_days`` (what ``dispatcher.purge`` runs)."""
        return purge(self.store, retention=timedelta(days=self.settings.retention_days))

    def migrate(self) -> None:
        """Create or upgrade the database schema to the newest migration."""
        from dispatcher.db.migrate import upgrade

        upgrade(self.store)

    def close(self) -> None:
        """Close channel connections and the database engine."""
        if "channels" in self.__dict__:
            self.channels.close()
        if "rate_limiter" in self.__dict__:
            self.rate_limiter.client.close()
        self.doorbell.latch.close()
        self.store.dispose()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
