"""The :class:`Dispatcher`: the one object an app talks to."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy.orm import Session

from dispatcher.arguments import checked, checked_except
from dispatcher.campaigns.api import Campaigns
from dispatcher.campaigns.info import CampaignInfo
from dispatcher.campaigns.preview import Preview, dry_run
from dispatcher.catalog import Catalog, NotificationType
from dispatcher.channels.base import Channel, ChannelContext
from dispatcher.channels.email.unsubscribe import UnsubscribeToken, verify_unsubscribe_token
from dispatcher.channels.registry import ChannelRegistry
from dispatcher.channels.runtime import ChannelRuntime
from dispatcher.channels.web_push.subscriptions import PushSubscriptions
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.engine.analytics import Analytics
from dispatcher.engine.digests import WINDOW_STATUSES, list_windows
from dispatcher.engine.doorbell import Doorbell
from dispatcher.engine.explain import Explanation, explain
from dispatcher.engine.metrics import DatabaseCollector
from dispatcher.engine.operations import Deliveries
from dispatcher.engine.outbox import EventReceipt, Outbox
from dispatcher.engine.scheduled import EventChange, cancel, reschedule
from dispatcher.enums import Priority
from dispatcher.errors import ConfigurationError, DispatcherError, InvalidArgumentError
from dispatcher.policies import Policy, default_policies
from dispatcher.policies.preference import PreferenceRule, Preferences
from dispatcher.policies.quiet_hours import QuietHours
from dispatcher.seed_types import default_catalog
from dispatcher.settings import Settings
from dispatcher.subscribers.directory import Subscribers
from dispatcher.subscribers.inbox import Inbox, InboxItem
from dispatcher.templating.campaign_sources import CampaignSources
from dispatcher.templating.overrides import TemplateOverrides
from dispatcher.templating.renderer import Renderer
from dispatcher.templating.versions import Templates


class Dispatcher:
    """Entry point: register types, manage subscribers, ``notify``, read inboxes.

    One instance per process is enough; it is safe to share between threads that do
    not share a SQLAlchemy session. Workers build theirs from the environment
    (``Dispatcher.from_env()``), so channels and policies that workers must know come
    from entry points (see :mod:`dispatcher.channels.registry`).

    Parameters:
        settings: Defaults to the ``DISPATCHER_*`` environment.
        catalog: Notification types; the seed types if None.
        channels: Channel name → class (or ``"module:Class"``); if None, the built-in
            channels plus those installed packages register
            (:func:`~dispatcher.channels.default_channels`).
        policies: Send-time policies in the order they run; if None,
            :func:`~dispatcher.policies.default_policies`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        catalog: Catalog | None = None,
        channels: Mapping[str, type[Channel] | str] | None = None,
        policies: Sequence[Policy] | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.store = Store(self.settings.database_url, table_prefix=self.settings.table_prefix)
        self.catalog = catalog or default_catalog()
        for module in self.settings.types_modules:
            self._load_types(module)
        #: The channels this dispatcher delivers through.
        self.channel_registry = ChannelRegistry(channels)
        #: The send-time policies, in the order they run (workers set them up).
        self.policies: list[Policy] = list(default_policies() if policies is None else policies)
        self._doorbell = Doorbell.for_settings(self.settings)
        self._outbox = Outbox(self.store, self.catalog, self._doorbell)
        #: Every subscriber's in-app inbox: read, mark, archive, count.
        self.inboxes = Inbox(self.store)
        self.subscribers = Subscribers(self.store)
        #: Operators' view of deliveries: list, count, send failed ones again.
        self.deliveries = Deliveries(self.store, self._doorbell)
        #: Engagement per type, channel and day, campaign progress (computed in the database).
        self.analytics = Analytics(self.store, self.settings.signing_secret)
        self.preferences = Preferences(
            self.store, self.catalog, lambda: self.channel_registry.names
        )
        self.templates = Templates(
            self.store, self.catalog, lambda: self.renderer, lambda: self.channels
        )
        self.push_subscriptions = PushSubscriptions(self.store, self.settings.push)
        self.quiet_hours = QuietHours(self.store)
        #: Bulk and scheduled sends to an audience: create, preview, start, pause...
        self.campaigns = Campaigns(
            self.store,
            self.catalog,
            self._doorbell,
            self._preview,
            renderer=lambda: self.renderer,
            channels=lambda: self.channels,
        )

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

    # -- types --------------------------------------------------------------------

    @checked
    def register(self, notification_type: NotificationType) -> None:
        """Add an app-defined notification type to this dispatcher's catalog."""
        self.catalog.register(notification_type)

    # -- sending ------------------------------------------------------------------

    @checked_except("data")
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
        actor: str | None = None,
    ) -> EventReceipt:
        """Record that ``type`` happened and notify subscribers ``to``.

        Parameters:
            type: A registered notification type.
            to: One subscriber id or several. An item may be a mapping instead,
                ``{"id": "u1", "email": ..., "timezone": ..., "locale": ...}`` (other
                keys are attributes): that subscriber is created or updated in the
                same transaction as the event.
            data: The event's payload, validated against the type's schema.
            priority: ``low``, ``medium``, ``high`` or ``urgent``; defaults to the type's.
            idempotency_key: Calls with the same key store one event.
            send_at: Deliver at this instant instead of now (aware datetime).
            session: Join this SQLAlchemy session's transaction (transactional outbox);
                the doorbell rings only after it commits.
            actor: The subscriber id of whoever caused the event. Templates see it as
                ``actor``, inbox items and socket messages carry it; if the actor is
                also a recipient, their deliveries are skipped (reason ``actor``)
                unless the type has ``notify_actor=True``.

        Raises:
            UnknownEventTypeError, PayloadValidationError, UnknownSubscriberError,
            InvalidIdentifierError, ValidationError, IdempotencyConflictError: nothing
            is stored. Ids and keys follow :mod:`dispatcher.validation`'s character set;
            payload values must be ones both stores keep as they are (no NUL).
        """
        return self._outbox.notify(
            type,
            to=to,
            data=data,
            priority=priority,
            idempotency_key=idempotency_key,
            send_at=send_at,
            session=session,
            actor=actor,
        )

    def ring(self, receipt: EventReceipt) -> bool:
        """Ring the doorbell for an event stored in a transaction this dispatcher did not
        commit itself (``dispatcher.contrib.django`` calls it from Django's
        ``transaction.on_commit``). Call it only once that transaction has committed.

        A replayed event or one scheduled for later does not ring (the sweep releases
        it); if this is never called, the sweep rings the event after
        ``DISPATCHER_SWEEP_GRACE_SECONDS``. Returns whether a message was sent.
        """
        if not receipt.created or receipt.send_at > utcnow():
            return False
        return self._doorbell.fanout(receipt.id, receipt.priority)

    @checked_except("data")
    async def anotify(
        self,
        type: str,
        *,
        to: str | Mapping[str, Any] | Iterable[str | Mapping[str, Any]],
        data: Mapping[str, Any] | None = None,
        priority: Priority | str | None = None,
        idempotency_key: str | None = None,
        send_at: datetime | None = None,
        actor: str | None = None,
    ) -> EventReceipt:
        """:meth:`notify` for async code: the same checks, rows and errors, run in a
        worker thread so the event loop keeps serving while the database (and the
        doorbell) answer. It takes no ``session`` (a sync SQLAlchemy session belongs to
        one thread); an app that needs the outbox in its transaction calls
        :meth:`notify` where that transaction runs."""
        return await asyncio.to_thread(
            self.notify,
            type,
            to=to,
            data=data,
            priority=priority,
            idempotency_key=idempotency_key,
            send_at=send_at,
            actor=actor,
        )

    @checked
    def cancel(
        self, event_id: int | None = None, *, idempotency_key: str | None = None
    ) -> EventChange:
        """Cancel an event that has not fanned out yet (a ``send_at`` one, typically),
        by id or by idempotency key. Cancelling twice is harmless (``changed=False``).

        Raises:
            NotFoundError: no such event.
            EventNotPendingError: it has already fanned out; nothing changes.
            ValidationError: neither or both references.
        """
        return cancel(self.store, event_id=event_id, idempotency_key=idempotency_key)

    @checked
    def reschedule(
        self,
        event_id: int | None = None,
        *,
        send_at: datetime,
        idempotency_key: str | None = None,
    ) -> EventChange:
        """Move an event that has not fanned out yet to ``send_at`` (aware datetime; a
        past one means now, and it is rung at once).

        Raises:
            NotFoundError: no such event.
            EventNotPendingError: it has already fanned out, or was cancelled.
            ValidationError: a naive ``send_at``; neither or both references.
        """
        change = reschedule(
            self.store, event_id=event_id, idempotency_key=idempotency_key, send_at=send_at
        )
        if change.send_at <= utcnow():
            self._doorbell.fanout(change.id, change.priority, bulk=change.bulk)
        return change

    @checked
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
        return self.inboxes.list(
            subscriber_id,
            limit=limit,
            unread_only=unread_only,
            before_id=before_id,
            category=category,
            type=type,
            archived=archived,
        )

    @checked
    def explain(self, ref: str | int) -> Explanation:
        """What happened to an event, per recipient and channel, and why.

        ``ref`` is an event id (``123`` or ``"e123"``), a notification id (``"n456"``)
        or ``"key:<idempotency key>"``.

        Raises:
            ValidationError: malformed reference.
            NotFoundError: no such event or notification.
        """
        return explain(self.store, ref)

    def digests(
        self, *, status: str | None = None, subscriber: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Digest windows, newest first: ``open`` (gathering), ``flushed`` or ``dropped``.

        Raises:
            InvalidArgumentError: ``status`` is none of those.
        """
        if status is not None and status not in WINDOW_STATUSES:
            raise InvalidArgumentError("status", f"status must be one of {list(WINDOW_STATUSES)}")
        return list_windows(self.store, status=status, subscriber=subscriber, limit=limit)

    def metrics_collector(self) -> DatabaseCollector:
        """A Prometheus collector that reads this dispatcher's database and broker each
        time it is scraped (see :mod:`dispatcher.engine.metrics`)."""
        return DatabaseCollector(self.store, self.settings.broker_url)

    @checked
    def unsubscribe(
        self, token: str, *, now: datetime | None = None
    ) -> tuple[UnsubscribeToken, PreferenceRule]:
        """Verify a one-click unsubscribe ``token`` and turn its channel off for its type
        or category. Applying the same token twice leaves the same single rule.

        Raises:
            InvalidUnsubscribeTokenError: the token does not verify; nothing changes.
            NotFoundError: the subscriber no longer exists.
        """
        request = verify_unsubscribe_token(token, self.settings.signing_secret, now=now)
        rule = self.preferences.set(
            request.subscriber_id,
            enabled=False,
            channel=request.channel,
            type=request.type,
            category=request.category,
        )
        return request, rule

    # -- rendering and channels (shared with the worker) --------------------------

    @cached_property
    def renderer(self) -> Renderer:
        """Renders this dispatcher's templates (files, then operators' overrides)."""
        folders = [*self.settings.extra_templates_dirs, self.settings.templates_dir]
        return Renderer(
            folders,
            default_locale=self.settings.default_locale,
            overrides=TemplateOverrides(
                self.store, refresh_seconds=self.settings.template_refresh_seconds
            ),
            time_limit=self.settings.template_time_limit_seconds,
            output_limit=self.settings.template_output_max_chars,
            campaign_sources=CampaignSources(self.store),
        )

    @cached_property
    def channels(self) -> ChannelRuntime:
        """This process's channel instances (created on first use)."""
        return ChannelRuntime(ChannelContext(self.settings, self.store), self.channel_registry)

    def _preview(self, campaign: CampaignInfo, now: datetime) -> Preview:
        return dry_run(
            self.store, self.catalog, self.renderer, self.channels, self.settings, campaign, now
        )

    def migrate(self) -> None:
        """Create or upgrade the database schema to the newest migration."""
        from dispatcher.db.migrate import upgrade

        upgrade(self.store)

    def schema_revisions(self) -> tuple[str | None, str | None]:
        """The database's schema revision (None if it has none) and the newest one this
        version ships: equal when :meth:`migrate` has nothing to do."""
        from dispatcher.db.migrate import revisions

        return revisions(self.store)

    def close(self) -> None:
        """Close channel connections and the database engine."""
        if "channels" in self.__dict__:
            self.channels.close()
        self._doorbell.latch.close()
        self.store.dispose()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def operator_problem(exc: BaseException, settings: Settings) -> DispatcherError | None:
    """What a driver error means for an operator (the database down, its schema missing
    or old), as one of our errors with the fix in its message; None for anything else.
    Tools facing a person (the CLI) show that instead of a traceback."""
    from dispatcher.db.problems import database_problem

    return database_problem(exc, settings.database_url)
