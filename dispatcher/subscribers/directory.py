"""Subscribers: the people notifications go to, known by the app's own ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dispatcher.arguments import checked_methods
from dispatcher.db.engine import Store
from dispatcher.db.models import Subscriber
from dispatcher.errors import NotFoundError, ValidationError
from dispatcher.subscribers.addresses import validate_email, validate_locale, validate_timezone
from dispatcher.validation import check_identifier, check_json, check_limit, check_storable

_UNSET: Any = object()


def subscriber_pk(session: Session, subscriber_id: str) -> int:
    """The primary key of the subscriber the app calls ``subscriber_id``.

    Raises:
        NotFoundError: no such subscriber.
        ValidationError: ``subscriber_id`` is not a string no store could hold.
    """
    check_lookup_id(subscriber_id)
    pk = session.scalar(select(Subscriber.id).where(Subscriber.external_id == subscriber_id))
    if pk is None:
        raise NotFoundError(f"no subscriber {subscriber_id!r}")
    return pk


@dataclass(frozen=True)
class SubscriberChange:
    """A checked change to one subscriber (:meth:`Subscribers.prepare`)."""

    id: str
    #: Columns to set (``email``, ``timezone``, ``locale``), already validated.
    values: dict[str, Any]
    #: Attributes merged into the stored ones.
    attributes: dict[str, Any]


@dataclass(frozen=True)
class SubscriberInfo:
    id: str
    email: str | None
    locale: str | None
    timezone: str
    attributes: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: Subscriber) -> SubscriberInfo:
        return cls(
            row.external_id,
            row.email,
            row.locale,
            row.timezone,
            dict(row.attributes),
            row.created_at,
        )


def check_lookup_id(value: object, field: str = "subscriber id") -> None:
    """Refuse a subscriber id to look up that no store could hold.

    Lookups are laxer than :func:`~dispatcher.validation.check_identifier`, so that a
    subscriber stored before ids had a character set can still be read and deleted.

    Raises:
        ValidationError: ``value`` is not a string, or holds a NUL or a lone surrogate.
    """
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, not {type(value).__name__}")
    check_storable(value, field)


@checked_methods
class Subscribers:
    """Create, update, read and delete subscribers."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def upsert(
        self,
        id: str,
        *,
        email: str | None = _UNSET,
        timezone: str = _UNSET,
        locale: str | None = _UNSET,
        session: Session | None = None,
        **attributes: Any,
    ) -> SubscriberInfo:
        """Create subscriber ``id`` or update the fields given; attributes are merged.

        ``id`` must be in the character set of :mod:`dispatcher.validation` (printable,
        no control, format or line-separator characters, at most 255 characters); the
        locale a tag Babel knows; attributes JSON values both stores keep as they are.

        Raises:
            InvalidIdentifierError, InvalidAddressError, InvalidTimeZoneError,
            InvalidLocaleError, UnstorableValueError: nothing is saved.
        """
        new = self.prepare(id, email=email, timezone=timezone, locale=locale, **attributes)
        if session is not None:
            return self._upsert(session, id, new.values, attributes)
        with self.store.session(write=True) as own:
            return self._upsert(own, id, new.values, attributes)

    @staticmethod
    def prepare(
        id: str,
        *,
        email: str | None = _UNSET,
        timezone: str = _UNSET,
        locale: str | None = _UNSET,
        **attributes: Any,
    ) -> SubscriberChange:
        """Check what :meth:`upsert` would write, without writing: the change to pass
        to :meth:`upsert_many`.

        Raises:
            InvalidIdentifierError, InvalidAddressError, InvalidTimeZoneError,
            InvalidLocaleError, UnstorableValueError: as :meth:`upsert`.
        """
        check_identifier(id, "subscriber id")
        check_json(attributes, "attributes")
        values: dict[str, Any] = {}
        if email is not _UNSET:
            values["email"] = validate_email(email) if email is not None else None
        if timezone is not _UNSET:
            values["timezone"] = validate_timezone(timezone)
        if locale is not _UNSET:
            values["locale"] = validate_locale(locale) if locale is not None else None
        return SubscriberChange(id, values, dict(attributes))

    def upsert_many(self, changes: Sequence[SubscriberChange]) -> int:
        """Write checked changes (:meth:`prepare`) in one transaction: existing
        subscribers are loaded with one query, new ones inserted in one flush; a later
        change of the same id wins. Returns how many changes were written."""
        if not changes:
            return 0
        with self.store.session(write=True) as session:
            ids = list({c.id for c in changes})
            rows = {
                r.external_id: r
                for r in session.scalars(select(Subscriber).where(Subscriber.external_id.in_(ids)))
            }
            for change in changes:
                row = rows.get(change.id)
                if row is None:
                    row = rows[change.id] = Subscriber(
                        external_id=change.id, timezone="UTC", attributes={}
                    )
                    session.add(row)
                for key, value in change.values.items():
                    setattr(row, key, value)
                if change.attributes:
                    row.attributes = {**row.attributes, **change.attributes}
        return len(changes)

    @staticmethod
    def _upsert(
        session: Session, id: str, values: dict[str, Any], attributes: dict[str, Any]
    ) -> SubscriberInfo:
        row = session.scalar(select(Subscriber).where(Subscriber.external_id == id))
        if row is None:
            row = Subscriber(external_id=id, timezone="UTC", attributes={})
            session.add(row)
        for key, value in values.items():
            setattr(row, key, value)
        if attributes:
            row.attributes = {**row.attributes, **attributes}
        session.flush()
        return SubscriberInfo.from_row(row)

    def get(self, id: str) -> SubscriberInfo:
        """Subscriber ``id``.

        Raises:
            NotFoundError: no such subscriber.
        """
        check_lookup_id(id)
        with self.store.session() as session:
            row = session.scalar(select(Subscriber).where(Subscriber.external_id == id))
            if row is None:
                raise NotFoundError(f"no subscriber {id!r}")
            return SubscriberInfo.from_row(row)

    def delete(self, id: str) -> bool:
        """Delete the subscriber and everything of theirs; False if there was none."""
        check_lookup_id(id)
        with self.store.session() as session:
            result = session.execute(delete(Subscriber).where(Subscriber.external_id == id))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def list(self, *, limit: int = 100, after: str | None = None) -> list[SubscriberInfo]:
        with self.store.session() as session:
            stmt = select(Subscriber).order_by(Subscriber.external_id).limit(check_limit(limit))
            if after is not None:
                check_lookup_id(after, "after")
                stmt = stmt.where(Subscriber.external_id > after)
            return [SubscriberInfo.from_row(r) for r in session.scalars(stmt)]
