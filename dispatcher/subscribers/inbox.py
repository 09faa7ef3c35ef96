"""The in-app inbox: what a subscriber sees, newest first."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, update

from dispatcher.arguments import checked_methods
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Event, Notification, Subscriber
from dispatcher.errors import NotFoundError, ValidationError
from dispatcher.subscribers.directory import subscriber_pk
from dispatcher.validation import MAX_INT64, MIN_INT64, check_limit, check_storable


@dataclass(frozen=True)
class InboxItem:
    """One notification as the subscriber's inbox shows it."""

    id: int
    type: str
    category: str
    priority: str
    title: str
    body: str
    url: str | None
    data: dict[str, Any]
    created_at: datetime
    seen_at: datetime | None
    read_at: datetime | None
    archived_at: datetime | None
    #: Who caused the event (a subscriber id), if the app said.
    actor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as the WebSocket and REST API send it."""
        return {
            "id": self.id,
            "type": self.type,
            "category": self.category,
            "priority": self.priority,
            "title": self.title,
            "body": self.body,
            "url": self.url,
            "data": self.data,
            "created_at": self.created_at.isoformat(),
            "seen_at": self.seen_at.isoformat() if self.seen_at else None,
            "read_at": self.read_at.isoformat() if self.read_at else None,
            "archived_at": self.archived_at.isoformat() if self.archived_at else None,
            "actor": self.actor,
        }

    @classmethod
    def from_row(
        cls, notification: Notification, data: dict[str, Any], actor: str | None = None
    ) -> InboxItem:
        return cls(
            id=notification.id,
            type=notification.type,
            category=notification.category,
            priority=str(notification.priority),
            title=notification.title or "",
            body=notification.body or "",
            url=notification.url,
            data=data,
            created_at=notification.created_at,
            seen_at=notification.seen_at,
            read_at=notification.read_at,
            archived_at=notification.archived_at,
            actor=actor,
        )


@checked_methods
class Inbox:
    """Read and update the in-app inbox of subscribers (by their external id)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def query(
        self,
        subscriber_pk: int,
        *,
        unread_only: bool = False,
        archived: bool | None = False,
        category: str | None = None,
        type: str | None = None,
        before_id: int | None = None,
        after_id: int | None = None,
    ) -> Select[tuple[Notification, dict[str, Any], str | None]]:
        """The subscriber's inbox items matching the filters, as a statement.

        Raises:
            ValidationError: a filter no store could compare (a NUL in ``category``, an
                id beyond 64 bits); a filter that is merely unknown matches nothing.
        """
        for field, text in (("category", category), ("type", type)):
            if text is not None:
                check_storable(text, field)
        for field, number in (("before_id", before_id), ("after_id", after_id)):
            if number is not None and not MIN_INT64 <= number <= MAX_INT64:
                raise ValidationError(f"{field} must fit in 64 bits")
        stmt = (
            select(Notification, Event.payload, Event.actor)
            .join(Event, Event.id == Notification.event_id)
            .where(Notification.subscriber_id == subscriber_pk)
            .where(Notification.inbox_at.is_not(None))
        )
        if unread_only:
            stmt = stmt.where(Notification.read_at.is_(None))
        if archived is True:
            stmt = stmt.where(Notification.archived_at.is_not(None))
        elif archived is False:
            stmt = stmt.where(Notification.archived_at.is_(None))
        if category:
            stmt = stmt.where(Notification.category == category)
        if type:
            stmt = stmt.where(Notification.type == type)
        if before_id is not None:
            stmt = stmt.where(Notification.id < before_id)
        if after_id is not None:
            stmt = stmt.where(Notification.id > after_id)
        return stmt

    def list(
        self,
        subscriber_id: str,
        *,
        limit: int = 50,
        unread_only: bool = False,
        archived: bool | None = False,
        category: str | None = None,
        type: str | None = None,
        before_id: int | None = None,
    ) -> builtins.list[InboxItem]:
        """Newest first; page with ``before_id`` = the last id of the previous page."""
        with self.store.session() as session:
            pk = subscriber_pk(session, subscriber_id)
            stmt = self.query(
                pk,
                unread_only=unread_only,
                archived=archived,
                category=category,
                type=type,
                before_id=before_id,
            )
            rows = session.execute(
                stmt.order_by(Notification.id.desc()).limit(check_limit(limit))
            ).all()
            return [InboxItem.from_row(n, payload, actor) for n, payload, actor in rows]

    def since(
        self, subscriber_id: str, after_id: int, *, limit: int = 500
    ) -> builtins.list[InboxItem]:
        """What arrived after ``after_id``, oldest first (for a reconnecting client)."""
        with self.store.session() as session:
            pk = subscriber_pk(session, subscriber_id)
            stmt = self.query(pk, archived=None, after_id=after_id)
            rows = session.execute(
                stmt.order_by(Notification.id.asc()).limit(check_limit(limit))
            ).all()
            return [InboxItem.from_row(n, payload, actor) for n, payload, actor in rows]

    def last_id_at(self, subscriber_id: str, moment: datetime) -> int:
        """The newest notification id the subscriber had at ``moment`` (ids grow with
        time); a very large id when nothing arrived after it, so nothing is replayed."""
        with self.store.session() as session:
            first_after = session.scalar(
                select(func.min(Notification.id))
                .join(Subscriber, Subscriber.id == Notification.subscriber_id)
                .where(Subscriber.external_id == subscriber_id)
                .where(Notification.created_at > moment)
            )
        if first_after is None:
            return 2**62
        return int(first_after) - 1

    def get(self, subscriber_id: str, notification_id: int) -> InboxItem:
        """One item of the subscriber's own inbox; someone else's is :class:`NotFoundError`."""
        with self.store.session() as session:
            pk = subscriber_pk(session, subscriber_id)
            stmt = self.query(pk, archived=None).where(Notification.id == notification_id)
            row = session.execute(stmt).first()
            if row is None:
                raise NotFoundError(f"no notification {notification_id} in this inbox")
            return InboxItem.from_row(row[0], row[1], row[2])

    def unread_count(self, subscriber_id: str) -> int:
        with self.store.session() as session:
            pk = subscriber_pk(session, subscriber_id)
            stmt = (
                select(func.count())
                .select_from(Notification)
                .where(
                    Notification.subscriber_id == pk,
                    Notification.inbox_at.is_not(None),
                    Notification.read_at.is_(None),
                    Notification.archived_at.is_(None),
                )
            )
            return int(session.scalar(stmt) or 0)

    def _mark(
        self, subscriber_id: str, ids: builtins.list[int] | None, **values: datetime | None
    ) -> int:
        with self.store.session(write=True) as session:
            pk = subscriber_pk(session, subscriber_id)
            stmt = update(Notification).where(
                Notification.subscriber_id == pk, Notification.inbox_at.is_not(None)
            )
            if ids is not None:
                stmt = stmt.where(Notification.id.in_(ids))
            count = session.execute(stmt.values(**values)).rowcount  # type: ignore[attr-defined]
            if ids is not None and len(ids) == 1 and count == 0:
                raise NotFoundError(f"no notification {ids[0]} in this inbox")
            return int(count)

    def mark_read(self, subscriber_id: str, notification_id: int) -> None:
        self._mark(subscriber_id, [notification_id], read_at=utcnow())

    def mark_unread(self, subscriber_id: str, notification_id: int) -> None:
        self._mark(subscriber_id, [notification_id], read_at=None)

    def mark_seen(self, subscriber_id: str, notification_id: int) -> None:
        self._mark(subscriber_id, [notification_id], seen_at=utcnow())

    def archive(self, subscriber_id: str, notification_id: int) -> None:
        self._mark(subscriber_id, [notification_id], archived_at=utcnow())

    def unarchive(self, subscriber_id: str, notification_id: int) -> None:
        self._mark(subscriber_id, [notification_id], archived_at=None)

    def mark_all_read(self, subscriber_id: str) -> int:
        """Mark every unread item read; returns how many changed."""
        with self.store.session(write=True) as session:
            pk = subscriber_pk(session, subscriber_id)
            stmt = (
                update(Notification)
                .where(
                    Notification.subscriber_id == pk,
                    Notification.inbox_at.is_not(None),
                    Notification.read_at.is_(None),
                )
                .values(read_at=utcnow())
            )
            return int(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
