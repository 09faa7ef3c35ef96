"""What a campaign is: content, audience, channels, priority, send rates and schedule,
checked before anything is stored.

An audience is a small JSON document stored on the campaign::

    {"all": true}                                   everyone
    {"ids": ["u1", "u2"]}                           an explicit list of subscriber ids
    {"filter": {"role": "seller", "region": "north"}}   attribute equality, all must hold
    {"segment": "north-sellers"}                    a named segment's filter (d.campaigns.segments)
    ... plus "exclude": ["u9"] on any of them

It is resolved when a run starts (not when the campaign is saved: a segment edited in
between applies), and what it resolved to is recorded per run
(:class:`~dispatcher.db.models.CampaignAudience`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatcher.catalog import NotificationType
from dispatcher.enums import Priority
from dispatcher.errors import InvalidCampaignError, InvalidIdentifierError
from dispatcher.validation import check_identifier

#: Attribute names a filter may test: plain identifiers, so they are safe in a JSON path.
_ATTRIBUTE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: Segment names: lower-case words joined by ``-`` or ``_``.
SEGMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
#: Most ids an explicit audience or exclusion list may name.
MAX_IDS = 1_000_000
AUDIENCE_KEYS = ("all", "ids", "filter", "segment")
_ONE_OF = "'all', 'ids', 'filter' or 'segment'"


@dataclass(frozen=True)
class Audience:
    """Who a campaign targets (see the module docstring)."""

    everyone: bool = False
    ids: tuple[str, ...] | None = None
    filter: Mapping[str, str | int | float | bool] | None = None
    exclude: tuple[str, ...] = ()
    #: A segment's name: its filter is read when the run starts (:meth:`with_segment`).
    segment: str | None = None

    def with_segment(self, filter: Mapping[str, str | int | float | bool]) -> Audience:
        """This audience with its segment resolved to the segment's filter now."""
        return Audience(filter=dict(filter), exclude=self.exclude, segment=self.segment)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.everyone:
            out["all"] = True
        if self.ids is not None:
            out["ids"] = list(self.ids)
        if self.segment is not None:
            out["segment"] = self.segment
        elif self.filter is not None:
            out["filter"] = dict(self.filter)
        if self.exclude:
            out["exclude"] = list(self.exclude)
        return out

    def describe(self) -> str:
        if self.ids is not None:
            what = f"{len(self.ids)} listed subscriber(s)"
        elif self.segment is not None:
            what = f"segment {self.segment!r}"
        elif self.filter is not None:
            what = "subscribers with " + ", ".join(f"{k}={v!r}" for k, v in self.filter.items())
        else:
            what = "everyone"
        return what + (f", except {len(self.exclude)}" if self.exclude else "")


def parse_audience(value: Mapping[str, Any] | None) -> Audience:
    """An :class:`Audience` from its JSON form.

    Raises:
        InvalidCampaignError: (``field="audience"``) not exactly one of ``all``, ``ids``,
            ``filter``, ``segment``; ids not valid subscriber ids; a filter key not an
            identifier or a value not a string, number or boolean; a malformed segment name
            (whether the segment exists is checked where the database is at hand).
    """
    if not isinstance(value, Mapping):
        raise InvalidCampaignError(
            f"audience must be an object with one of {_ONE_OF}", field="audience"
        )
    unknown = set(value) - {*AUDIENCE_KEYS, "exclude"}
    if unknown:
        raise InvalidCampaignError(
            f"audience: unknown key(s) {sorted(unknown)}; use {_ONE_OF}, and optionally 'exclude'",
            field="audience",
        )
    given = [k for k in AUDIENCE_KEYS if k in value]
    if len(given) != 1:
        raise InvalidCampaignError(
            f"audience needs exactly one of {_ONE_OF} (got {given or 'none'})",
            field="audience",
        )
    exclude = _ids(value.get("exclude", []), "audience.exclude")
    key = given[0]
    if key == "all":
        if value["all"] is not True:
            raise InvalidCampaignError("audience.all must be true", field="audience.all")
        return Audience(everyone=True, exclude=exclude)
    if key == "ids":
        ids = _ids(value["ids"], "audience.ids")
        if not ids:
            raise InvalidCampaignError("audience.ids is empty", field="audience.ids")
        return Audience(ids=ids, exclude=exclude)
    if key == "segment":
        return Audience(
            segment=check_segment_name(value["segment"], "audience.segment"), exclude=exclude
        )
    return Audience(filter=check_filter(value["filter"], "audience.filter"), exclude=exclude)


def check_segment_name(value: Any, field: str = "name") -> str:
    """A segment name.

    Raises:
        InvalidCampaignError: (``field``) not 1 to 64 lower-case letters, digits, ``-``
            or ``_``, starting with a letter or digit.
    """
    if not isinstance(value, str) or not SEGMENT_NAME.match(value):
        raise InvalidCampaignError(
            f"{field}: segment name {value!r} must be 1 to 64 lower-case letters, digits, "
            "'-' or '_', starting with a letter or digit",
            field=field,
        )
    return value


def check_filter(raw: Any, field: str) -> dict[str, str | int | float | bool]:
    """An attribute filter: ``{"role": "seller", "region": "north"}``.

    Raises:
        InvalidCampaignError: (``field``) empty, a key not an identifier, or a value
            not a string, number or boolean.
    """
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidCampaignError(
            f"{field} must be a non-empty object of attribute: value", field=field
        )
    for name, wanted in raw.items():
        if not isinstance(name, str) or not _ATTRIBUTE.match(name):
            raise InvalidCampaignError(
                f"{field}: attribute name {name!r} must be a plain identifier "
                "(letters, digits, underscore)",
                field=field,
            )
        if not isinstance(wanted, str | int | float | bool) or wanted is None:
            raise InvalidCampaignError(
                f"{field}.{name}: value must be a string, number or boolean, "
                f"not {type(wanted).__name__}",
                field=field,
            )
    return dict(raw)


def _ids(value: Any, field: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidCampaignError(f"{field} must be a list of subscriber ids", field=field)
    if len(value) > MAX_IDS:
        raise InvalidCampaignError(f"{field}: at most {MAX_IDS} ids", field=field)
    for index, item in enumerate(value):
        try:
            check_identifier(item, f"{field}[{index}]")
        except InvalidIdentifierError as exc:
            raise InvalidCampaignError(str(exc), field=field) from None
    return tuple(dict.fromkeys(value))


def check_priority(value: Priority | str | None, default: Priority) -> Priority:
    """The campaign's priority; ``urgent`` is refused. Left out, it is the type's, and
    ``high`` for a type whose default is ``urgent`` (a campaign is bulk by nature).

    Raises:
        InvalidCampaignError: (``field="priority"``) unknown, or ``urgent``.
    """
    if value is None:
        value = Priority.HIGH if default is Priority.URGENT else default
    try:
        priority = Priority(value)
    except ValueError:
        raise InvalidCampaignError(
            f"unknown priority {value!r}; a campaign may be low, medium or high",
            field="priority",
        ) from None
    if priority is Priority.URGENT:
        raise InvalidCampaignError(
            "priority 'urgent' is refused for a campaign: campaigns go to the bulk queue "
            "and must never delay urgent traffic; send urgent events with notify()",
            field="priority",
        )
    return priority


def check_channels(value: Sequence[str] | None, type: NotificationType) -> tuple[str, ...]:
    """The channels to send on (default: the type's).

    Raises:
        InvalidCampaignError: (``field="channels"``) empty, or a channel the type lacks.
    """
    if value is None:
        return tuple(type.channels)
    if isinstance(value, str):
        value = [value]
    channels = tuple(dict.fromkeys(value))
    if not channels:
        raise InvalidCampaignError("channels is empty", field="channels")
    unknown = [c for c in channels if c not in type.channels]
    if unknown:
        raise InvalidCampaignError(
            f"type {type.name!r} has no channel(s) {unknown}; it has {list(type.channels)}",
            field="channels",
        )
    return channels


def check_send_rates(value: Mapping[str, Any] | None, channels: Sequence[str]) -> dict[str, int]:
    """Messages per minute per channel.

    Raises:
        InvalidCampaignError: (``field="send_rates"``) a channel not sent on, or a rate
            that is not a positive whole number.
    """
    rates: dict[str, int] = {}
    for channel, rate in (value or {}).items():
        if channel not in channels:
            raise InvalidCampaignError(
                f"send_rates: {channel!r} is not one of this campaign's channels {list(channels)}",
                field="send_rates",
            )
        if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
            raise InvalidCampaignError(
                f"send_rates.{channel}: messages per minute must be a whole number >= 1, "
                f"not {rate!r}",
                field="send_rates",
            )
        rates[channel] = rate
    return rates


def check_timezone(value: str) -> str:
    """An IANA zone name.

    Raises:
        InvalidCampaignError: (``field="timezone"``) not a zone this system knows.
    """
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidCampaignError(
            f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'",
            field="timezone",
        ) from None
    return value


def check_aware(value: datetime | None, field: str) -> datetime | None:
    """``value`` if it is timezone-aware.

    Raises:
        InvalidCampaignError: naive datetime.
    """
    if value is not None and value.tzinfo is None:
        raise InvalidCampaignError(
            f"{field} must be timezone-aware (e.g. datetime(..., tzinfo=UTC))", field=field
        )
    return value
