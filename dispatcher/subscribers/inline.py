"""Recipients given inline in ``notify(to=[...])``: who they are, checked, then upserted.

``to`` may mix plain subscriber ids with mappings such as
``{"id": "u1", "email": "ana@example.com", "timezone": "Europe/Madrid", "locale": "es"}``
(Novu and Knock accept the same). A mapping creates the subscriber or updates the fields
it gives, in the caller's transaction, so an app needs no separate call to keep its
users in sync. Any other key is an attribute (merged, as in ``subscribers.upsert``).

Everything is checked before anything is written: a bad email, time zone, locale or
attribute names its place (``to[2].email``) and no row is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.db.models import Subscriber
from dispatcher.errors import InvalidArgumentError, ValidationError
from dispatcher.subscribers.addresses import validate_email, validate_locale, validate_timezone
from dispatcher.validation import check_identifier, check_json

#: Ids per ``IN (...)`` when looking up stored subscribers.
LOOKUP_CHUNK = 5000
#: Keys of an inline recipient that are columns; any other key is an attribute.
FIELDS = ("email", "timezone", "locale")


@dataclass(frozen=True)
class InlineRecipient:
    """One recipient given as a mapping, its values checked."""

    id: str
    #: Only the columns the mapping gave (``email`` may be None to clear it).
    values: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipients:
    """``to`` read: every id in order (no repeats), and those given inline."""

    ids: list[str]
    inline: list[InlineRecipient]


def parse_recipients(to: object) -> Recipients:
    """Read ``notify``'s ``to``: one id, or several ids and mappings.

    Raises:
        InvalidArgumentError: ``to`` is neither a string nor a list of ids and mappings.
        InvalidIdentifierError, InvalidAddressError, InvalidTimeZoneError,
        InvalidLocaleError, UnstorableValueError, ValidationError: naming ``to[i]`` or
        ``to[i].field``.
    """
    if isinstance(to, str):
        return Recipients([check_identifier(to, "to")], [])
    if isinstance(to, Mapping):
        items: list[Any] = [to]
    elif isinstance(to, Iterable) and not isinstance(to, bytes | bytearray):
        items = list(to)
    else:
        raise InvalidArgumentError(
            "to",
            f"to must be a subscriber id or a list of ids and mappings, not {type(to).__name__}",
        )
    if not items:
        raise ValidationError("notify needs at least one recipient in 'to'")
    ids: dict[str, None] = {}
    inline: dict[str, InlineRecipient] = {}
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            recipient = _inline(item, f"to[{index}]")
            inline[recipient.id] = recipient
            ids[recipient.id] = None
        else:
            ids[check_identifier(item, f"to[{index}]")] = None
    return Recipients(list(ids), list(inline.values()))


def _inline(item: Mapping[Any, Any], where: str) -> InlineRecipient:
    if "id" not in item:
        raise ValidationError(f"{where}: an inline recipient needs an 'id'")
    external_id = check_identifier(item["id"], f"{where}.id")
    values: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for key, value in item.items():
        if key == "id":
            continue
        if not isinstance(key, str):
            raise ValidationError(f"{where}: keys must be strings, not {type(key).__name__}")
        if key in FIELDS:
            values[key] = _checked(key, value, f"{where}.{key}")
        else:
            attributes[key] = value
    check_json(attributes, where)
    return InlineRecipient(external_id, values, attributes)


def _checked(key: str, value: Any, where: str) -> Any:
    """The column value, or the checker's own error class with ``where`` in front."""
    if value is None and key in ("email", "locale"):
        return None
    try:
        if key == "email":
            return validate_email(value)
        if key == "timezone":
            return validate_timezone(value)
        return validate_locale(value)
    except ValidationError as exc:
        raise type(exc)(f"{where}: {exc}") from None


def upsert_inline(session: Session, recipients: Iterable[InlineRecipient]) -> int:
    """Create or update the inline recipients in ``session``'s transaction; returns how
    many. Fields a mapping leaves out keep their stored values; attributes are merged."""
    wanted = {r.id: r for r in recipients}
    if not wanted:
        return 0
    ids = list(wanted)
    stored: dict[str, Subscriber] = {}
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        found = session.scalars(select(Subscriber).where(Subscriber.external_id.in_(chunk)))
        stored.update((subscriber.external_id, subscriber) for subscriber in found)
    for external_id, recipient in wanted.items():
        row = stored.get(external_id)
        if row is None:
            row = Subscriber(external_id=external_id, timezone="UTC", attributes={})
            session.add(row)
        for key, value in recipient.values.items():
            setattr(row, key, value)
        if recipient.attributes:
            row.attributes = {**(row.attributes or {}), **recipient.attributes}
    session.flush()
    return len(wanted)
