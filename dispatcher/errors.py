"""Every error ``dispatcher`` raises on purpose.

::

    DispatcherError
     ├── ConfigurationError          a setting is missing or invalid
     │    └── MissingExtraError       an optional dependency (an extra) is not installed
     ├── ValidationError             bad input from the calling app or an operator
     │    ├── UnknownEventTypeError
     │    ├── PayloadValidationError
     │    ├── UnknownSubscriberError
     │    ├── InvalidAddressError
     │    ├── InvalidTimeZoneError
     │    ├── HeaderInjectionError
     │    ├── InvalidSubscriptionError
     │    ├── PushEndpointTakenError
     │    ├── InvalidUnsubscribeTokenError
     │    ├── InvalidClickTokenError
     │    └── InvalidCampaignError    a campaign's content, audience, priority or schedule
     ├── CampaignStateError          a campaign cannot do that now (pause a finished one)
     ├── SegmentInUseError           a segment a campaign may still run with cannot go
     ├── IdempotencyConflictError    same key, different event
     ├── NotFoundError               a row asked for by id does not exist
 ├── EventNotPendingError        cancel/reschedule came after fan-out
     ├── TemplateError               a template does not parse or render
     │    ├── TemplateNotFoundError
     │    └── TemplateLimitError     a render went over its time, size or iteration limit
     ├── BrokerUnavailableError      the broker did not answer
     ├── AuthenticationError         a gateway token is missing, invalid or expired
     ├── DeliveryError               a channel could not deliver
     │    ├── TransientDeliveryError  try again later (drives retries)
     │    └── PermanentDeliveryError  never try again
     ├── TaskOutcomeError            (worker tasks only) what Flower shows for a batch
     │    ├── DeliveriesFailedError
     │    └── DeliveriesRetryingError
     ├── DatabaseNotMigratedError    the schema is missing or behind (run ``dispatcher migrate``)
     └── DatabaseUnavailableError    the database does not answer

Messages name the offending value or setting so a caller can fix the call without
reading our source; they never contain secrets.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta


class DispatcherError(Exception):
    """Raised for every error ``dispatcher`` signals on purpose; catch this to catch all."""


class ConfigurationError(DispatcherError):
    """Raised when a setting is missing or invalid; the message names the variable."""


class MissingExtraError(ConfigurationError, ImportError):
    """Raised when a feature needs an optional dependency that is not installed; the
    message names the extra to install (``pip install dispatcher[gateway]``)."""

    def __init__(self, extra: str, feature: str, module: str) -> None:
        self.extra = extra
        self.feature = feature
        self.module = module
        super().__init__(
            f"{feature} needs `pip install dispatcher[{extra}]` ({module} is not installed)"
        )


class ValidationError(DispatcherError, ValueError):
    """Raised when input from the calling app or an operator is not acceptable."""


class InvalidArgumentError(ValidationError, TypeError):
    """Raised when a public call gets an argument of the wrong type or shape (a list
    where a mapping belongs, a keyword that does not exist); ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class UnknownEventTypeError(ValidationError):
    """Raised when ``notify`` is called with a type that is not in the catalog."""

    def __init__(self, type_name: str, known: Sequence[str]) -> None:
        self.type_name = type_name
        self.known = tuple(known)
        super().__init__(
            f"unknown notification type {type_name!r}; registered types: {', '.join(sorted(known))}"
        )


class PayloadValidationError(ValidationError):
    """Raised when an event's data does not match its type's payload schema."""

    def __init__(self, type_name: str, errors: Sequence[str]) -> None:
        self.type_name = type_name
        self.errors = tuple(errors)
        super().__init__(f"invalid payload for {type_name!r}: " + "; ".join(errors))


class UnknownSubscriberError(ValidationError):
    """Raised when a recipient id does not name a stored subscriber."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        shown = ", ".join(repr(m) for m in self.missing[:10])
        more = f" (and {len(self.missing) - 10} more)" if len(self.missing) > 10 else ""
        super().__init__(f"unknown subscriber id(s): {shown}{more}")


class InvalidIdentifierError(ValidationError):
    """Raised when a subscriber id, a recipient id or an idempotency key is empty, too
    long, or has a character outside the documented set (see :mod:`dispatcher.validation`).

    The message names the position and the code point, not the id.
    """


class InvalidLocaleError(ValidationError):
    """Raised when a locale is not a tag Babel knows (``es``, ``es-MX``, ``zh-Hant-TW``)."""


class UnstorableValueError(ValidationError):
    """Raised when a value holds what a store cannot keep as it is: a NUL or a lone
    surrogate in a text, a number that is not finite or does not fit in 64 bits, or
    something that is not JSON.

    ``field`` is where (``attributes.nick``); ``reason`` what, without the value itself.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class InvalidAddressError(ValidationError):
    """Raised when an email address is not a single, well-formed address."""


class InvalidTimeZoneError(ValidationError):
    """Raised when a time zone is not a known IANA name."""


class HeaderInjectionError(ValidationError):
    """Raised when a value bound for a mail header contains CR, LF or another line break."""


class InvalidSubscriptionError(ValidationError):
    """Raised when a browser push subscription is malformed."""


class PushEndpointTakenError(ValidationError):
    """Raised when a push endpoint stored for another subscriber is offered with other keys.

    The browser that owns an endpoint always presents the same keys with it (its auth
    secret is known only to it and to us), so other keys mean someone else's endpoint.
    """


class InvalidUnsubscribeTokenError(ValidationError):
    """Raised when an unsubscribe token is malformed, forged, or expired (``expired``)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        self.expired = expired
        super().__init__(message)


class InvalidClickTokenError(ValidationError):
    """Raised when a click-tracking token is malformed, forged, or expired (``expired``)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        self.expired = expired
        super().__init__(message)


class InvalidCampaignError(ValidationError):
    """Raised when a campaign's definition is refused: ``urgent`` priority (campaigns go
    to the bulk queue), a channel its type lacks, a malformed audience, send rate, cron
    expression or time zone; ``field`` names the offending part."""

    def __init__(self, message: str, *, field: str) -> None:
        self.field = field
        super().__init__(message)


class CampaignStateError(DispatcherError):
    """Raised when a campaign cannot do what was asked in its current state (start a
    cancelled one, pause one that is not running); ``status`` is that state."""

    def __init__(self, message: str, *, status: str) -> None:
        self.status = status
        super().__init__(message)


class SegmentInUseError(DispatcherError):
    """Raised when deleting a segment that a campaign which may still run (any but a
    cancelled one) names in its audience; ``segment`` is its name, ``campaigns`` their
    ids."""

    def __init__(self, message: str, *, segment: str, campaigns: Sequence[int]) -> None:
        self.segment = segment
        self.campaigns = list(campaigns)
        super().__init__(message)


class IdempotencyConflictError(DispatcherError):
    """Raised when an idempotency key is reused for a different notification type."""


class NotFoundError(DispatcherError, LookupError):
    """Raised when a row asked for by id does not exist (or is not the caller's)."""


class EventNotPendingError(DispatcherError):
    """Raised when ``cancel`` or ``reschedule`` finds the event no longer waiting: it has
    fanned out (its notifications exist), or was cancelled or failed. ``status`` says
    which."""

    def __init__(self, event_id: int, status: str, action: str) -> None:
        self.event_id = event_id
        self.status = str(status)
        why = {
            "fanned_out": "it has already fanned out (its notifications exist)",
            "cancelled": "it was cancelled",
            "failed": "its fan-out failed",
        }.get(self.status, f"it is {self.status}")
        super().__init__(f"cannot {action} event {event_id}: {why}")


class TemplateError(DispatcherError):
    """Raised when a template does not parse or fails to render.

    ``reason`` is a short machine-readable detail (``missing variable 'seller'``).
    """

    def __init__(self, message: str, *, reason: str | None = None, line: int | None = None):
        self.reason = reason or message
        self.line = line
        super().__init__(message)


class TemplateNotFoundError(TemplateError):
    """Raised when no template exists for a type, channel, part and locale chain."""


class TemplateLimitError(TemplateError):
    """Raised when a render exceeds its time, output, size or iteration limit, or uses a
    refused construct (``lipsum()``); ``reason`` starts with ``render limit:``."""


class BrokerUnavailableError(DispatcherError):
    """Raised when the Celery broker does not answer."""


class AuthenticationError(DispatcherError):
    """Raised when a gateway token is missing, malformed, badly signed or expired.

    The message is deliberately vague: it is shown to whoever presented the token.
    """


class DeliveryError(DispatcherError):
    """Raised by a channel when a delivery could not be made."""

    def __init__(self, message: str, *, reason: str = "provider_error") -> None:
        self.reason = reason
        super().__init__(message)


class TransientDeliveryError(DeliveryError):
    """Raised when a delivery may succeed later; ``retry_after`` overrides the back-off."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "provider_unavailable",
        retry_after: timedelta | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, reason=reason)


class PermanentDeliveryError(DeliveryError):
    """Raised when a delivery will never succeed as it stands."""


class TaskOutcomeError(DispatcherError):
    """Raised by a worker task, never to an app, so that a monitor such as Flower shows
    what the task's deliveries did; the rows already hold every outcome."""


class DeliveriesFailedError(TaskOutcomeError):
    """Raised when a task's deliveries failed for good, or every one of them failed:
    the task ends ``FAILURE`` in Flower. Its message holds counts and reason codes only."""


class DeliveriesRetryingError(TaskOutcomeError):
    """Carried by the ``Retry`` a task raises when some of its deliveries failed
    transiently: the task shows ``RETRY`` with the time the first retry is due."""


class DatabaseNotMigratedError(DispatcherError):
    """Raised when the database has no dispatcher schema, or an older one than this
    version needs; ``dispatcher migrate`` fixes it."""


class DatabaseUnavailableError(DispatcherError):
    """Raised when the database does not answer (server down, file not writable); the
    message names it without its password."""
