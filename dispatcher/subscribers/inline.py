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

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from dispatcher.clock import utcnow
from dispatcher.db.models import Subscriber, table
from dispatcher.db.types import UTCDateTime
from dispatcher.errors import InvalidArgumentError, ValidationError
from dispatcher.subscribers.addresses import validate_email, validate_locale, validate_timezone
from dispatcher.validation import check_identifier, check_json

#: Ids per ``IN (...)`` when looking up stored subscribers.
LOOKUP_CHUNK = 5000
_SUBSCRIBERS = table(Subscriber)
_STORED = select(_SUBSCRIBERS.c.external_id, _SUBSCRIBERS.c.attributes).where(
    _SUBSCRIBERS.c.external_id.in_(bindparam("ids", expanding=True))
)
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
    if isinstance(value, str) and key != "email":
        # Many recipients share a handful of zones and locales: check each once.
        known = _SEEN.get((key, value))
        if known is not None:
            return known
        checked = _check(key, value, where)
        if len(_SEEN) < 4096:
            _SEEN[(key, value)] = checked
        return checked
    return _check(key, value, where)


#: Time zones and locales already found valid in this process (and their canonical form).
_SEEN: dict[tuple[str, str], str] = {}


def _check(key: str, value: Any, where: str) -> Any:
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
    many. Fields a mapping leaves out keep their stored values; attributes are merged.

    Set-based: one lookup per 5,000 ids, one multi-row insert for the new ones, one
    executemany per shape of update (which fields were given) for the others.
    """
    wanted = {r.id: r for r in recipients}
    if not wanted:
        return 0
    conn = session.connection()
    ids = list(wanted)
    stored: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        for external_id, attributes in conn.execute(_STORED, {"ids": chunk}):
            stored[external_id] = attributes or {}
    now = utcnow()
    new_rows = [
        {
            "external_id": r.id,
            "email": r.values.get("email"),
            "locale": r.values.get("locale"),
            "timezone": r.values.get("timezone", "UTC"),
            "attributes": dict(r.attributes),
            "created_at": now,
            "updated_at": now,
        }
        for r in wanted.values()
        if r.id not in stored
    ]
    if new_rows:
        conn.execute(insert(_SUBSCRIBERS), new_rows)
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in wanted.values():
        if r.id not in stored or not (r.values or r.attributes):
            continue
        values = dict(r.values)
        if r.attributes:
            values["attributes"] = {**stored[r.id], **r.attributes}
        shape = tuple(sorted(values))
        shapes.setdefault(shape, []).append(
            {"b_id": r.id, "b_now": now, **{f"b_{k}": v for k, v in values.items()}}
        )
    for shape, rows in shapes.items():
        statement = (
            update(_SUBSCRIBERS)
            .where(_SUBSCRIBERS.c.external_id == bindparam("b_id"))
            .values(
                updated_at=bindparam("b_now", type_=UTCDateTime()),
                **{k: bindparam(f"b_{k}") for k in shape},
            )
        )
        conn.execute(statement, rows)
    return len(wanted)
