"""The catalog of notification types: what each event carries and how it goes out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pydantic
import pydantic_core

from dispatcher.enums import Priority
from dispatcher.errors import (
    ConfigurationError,
    InvalidArgumentError,
    PayloadValidationError,
    UnknownEventTypeError,
)
from dispatcher.validation import json_problem


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` deliveries per subscriber on one channel per ``per_seconds``."""

    count: int
    per_seconds: int


@dataclass(frozen=True)
class NotificationType:
    """A kind of domain event and the defaults for the notifications it causes.

    Parameters:
        name: Stable identifier used in ``notify`` and in template paths.
        payload: Pydantic model that validates the event's data.
        example: A payload that validates; used by the demo, previews and template checks.
        channels: Channels a subscriber gets it on unless they opt out.
        priority: Default priority (``notify`` may override it).
        category: Group of types a subscriber can opt out of at once.
        critical: Cannot be opted out of on ``forced_channels``.
        forced_channels: Channels a critical type always uses.
        collapse_deferred: Deferred deliveries of this type are folded into one at release.
        push_ttl_seconds: How long a push service keeps it for an offline device.
        rate_limits: Per-channel caps per subscriber.
        notify_actor: Notify a recipient who is also the event's ``actor`` (by
            default they caused it, so they are skipped with reason ``actor``).
        digest: Channel name -> window: on that channel, deliveries of this type to one
            subscriber are gathered for the window (from the first one) and sent as one
            message listing them all (see :mod:`dispatcher.policies.digest`). Not for
            ``in_app`` (the inbox is the list already); ``urgent`` is never digested.
    """

    name: str
    payload: type[pydantic.BaseModel]
    example: Mapping[str, Any]
    channels: tuple[str, ...] = ("in_app",)
    priority: Priority = Priority.MEDIUM
    category: str = "general"
    critical: bool = False
    forced_channels: tuple[str, ...] = ("in_app",)
    collapse_deferred: bool = False
    push_ttl_seconds: int | None = None
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    description: str = ""
    notify_actor: bool = False
    digest: Mapping[str, timedelta] = field(default_factory=dict)

    def validate(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``data`` validated and normalised to JSON types.

        Besides the model's own rules, every value must be one both stores keep as it
        is (see :func:`dispatcher.validation.check_json`): no NUL in a string anywhere,
        integers within 64 bits, finite numbers.

        Raises:
            PayloadValidationError: naming every field the model refuses, or the first
                value the stores could not keep (by path and position, not content).
        """
        if not isinstance(data, Mapping):
            # A list or a string would reach ``dict()`` and fail with a bare TypeError.
            reason = f"must be an object of field names to values, not {type(data).__name__}"
            raise PayloadValidationError(self.name, [f"<root>: {reason}"])
        try:
            model = self.payload.model_validate(dict(data))
        except pydantic.ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
                for err in exc.errors()
            ]
            raise PayloadValidationError(self.name, problems) from None
        try:
            payload = model.model_dump(mode="json")
        except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
            # A free-form field (``dict[str, Any]``) holding bytes, a set of objects...
            reason = f"cannot be turned into JSON ({type(exc).__name__})"
            raise PayloadValidationError(self.name, [f"<root>: {reason}"]) from None
        # What the model accepts, the stores must keep as it is on both backends.
        problem = json_problem(payload)
        if problem is not None:
            path, reason = problem
            raise PayloadValidationError(self.name, [f"{path.lstrip('.') or '<root>'}: {reason}"])
        return payload

    def is_forced(self, channel: str) -> bool:
        """Whether a subscriber cannot opt out of this type on ``channel``."""
        return self.critical and channel in self.forced_channels


#: The longest digest window: a week (a longer one reads as a bug, not a digest).
MAX_DIGEST_WINDOW = timedelta(days=7)
#: Channels that may not be digested: the in-app inbox is the list already.
UNDIGESTED_CHANNELS = frozenset({"in_app"})


def check_digest(notification_type: NotificationType) -> None:
    """Check ``notification_type.digest``: each key one of the type's channels (and
    not ``in_app``), each window a ``timedelta`` from one second to a week.

    Raises:
        ConfigurationError: naming the type, the channel and what is wrong.
    """
    name = notification_type.name
    digest = notification_type.digest
    if not isinstance(digest, Mapping):
        raise ConfigurationError(
            f"type {name!r}: digest must map channel names to windows (timedelta), "
            f"not {type(digest).__name__}"
        )
    for channel, window in digest.items():
        where = f"type {name!r}: digest[{channel!r}]"
        if not isinstance(channel, str) or channel not in notification_type.channels:
            raise ConfigurationError(
                f"{where}: not one of the type's channels {list(notification_type.channels)}"
            )
        if channel in UNDIGESTED_CHANNELS:
            raise ConfigurationError(f"{where}: {channel} cannot be digested (its inbox is a list)")
        if not isinstance(window, timedelta):
            raise ConfigurationError(
                f"{where}: the window must be a timedelta, not {type(window).__name__}"
            )
        if window < timedelta(seconds=1) or window > MAX_DIGEST_WINDOW:
            raise ConfigurationError(
                f"{where}: the window must be from 1 second to 7 days, not {window}"
            )


class Catalog:
    """The registered notification types, by name."""

    def __init__(self, types: Mapping[str, NotificationType] | None = None) -> None:
        self._types: dict[str, NotificationType] = dict(types or {})

    def register(self, notification_type: NotificationType, *, replace: bool = False) -> None:
        """Add a type; registering the same name twice is an error unless ``replace``."""
        name = notification_type.name
        if not name.isidentifier():
            raise ConfigurationError(f"type name {name!r} must be a Python identifier")
        if name in self._types and not replace:
            raise ConfigurationError(f"notification type {name!r} is already registered")
        check_digest(notification_type)
        notification_type.validate(notification_type.example)
        self._types[name] = notification_type

    def get(self, name: str) -> NotificationType:
        """Return the type called ``name``.

        Raises:
            UnknownEventTypeError: if no such type is registered.
        """
        if not isinstance(name, str):
            raise InvalidArgumentError(
                "type", f"type must be a notification type's name, not {type(name).__name__}"
            )
        try:
            return self._types[name]
        except KeyError:
            raise UnknownEventTypeError(name, list(self._types)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[NotificationType]:
        return iter(self._types.values())

    def __len__(self) -> int:
        return len(self._types)

    def names(self) -> list[str]:
        return sorted(self._types)

    def copy(self) -> Catalog:
        return Catalog(self._types)
