"""Statuses, priorities and reasons, stored as their string values."""

from __future__ import annotations

from enum import StrEnum


class Priority(StrEnum):
    """How fast a notification must go out; each maps to its own queue."""

    #: Digests, marketing; may wait behind everything else.
    LOW = "low"
    #: The default for ordinary domain events.
    MEDIUM = "medium"
    #: A person is waiting for it (a sale, a cancellation).
    HIGH = "high"
    #: Outages and security; bypasses quiet hours.
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2, Priority.URGENT: 3}


class EventStatus(StrEnum):
    """Where an event is on its way to notifications."""

    #: Stored; waiting for fan-out (or for ``send_at``).
    PENDING = "pending"
    #: Notifications and deliveries exist for every recipient.
    FANNED_OUT = "fanned_out"
    #: Withdrawn before fan-out.
    CANCELLED = "cancelled"
    #: Fan-out gave up on it; ``reason`` says why (e.g. ``invalid_data``).
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    """Where one delivery (a notification on one channel) stands."""

    #: Due now; a worker may claim it.
    PENDING = "pending"
    #: Due at ``scheduled_for`` (quiet hours, retry back-off, rate limit, send_at).
    SCHEDULED = "scheduled"
    #: Claimed by a worker until ``lease_until``.
    SENDING = "sending"
    #: Accepted by the channel's provider.
    SENT = "sent"
    #: Will not be retried; ``reason`` says why.
    FAILED = "failed"
    #: Deliberately not sent; ``reason`` says why.
    SKIPPED = "skipped"

    @property
    def is_final(self) -> bool:
        return self in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)


class Reason(StrEnum):
    """Machine-readable reason recorded on a delivery that was not simply sent, or on an
    event that fan-out gave up on."""

    #: The channel has no provider configured (e.g. no SMTP host).
    CHANNEL_NOT_CONFIGURED = "channel_not_configured"
    #: The subscriber turned this type/category/channel off.
    OPTED_OUT = "opted_out"
    #: Deferred to the end of the subscriber's quiet hours.
    QUIET_HOURS = "quiet_hours"
    #: Deferred because the subscriber got too many on this channel lately.
    RATE_LIMITED = "rate_limited"
    #: Folded into another delivery of the same type.
    COLLAPSED = "collapsed"
    #: Held for a digest.
    DIGEST = "digest"
    #: A template did not render.
    TEMPLATE_ERROR = "template_error"
    #: A template went over its render limits (time, output size, loops) or used a
    #: refused construct.
    TEMPLATE_LIMIT = "template_limit"
    #: The subscriber has no address for this channel (no email, no devices).
    NO_ADDRESS = "no_address"
    #: Every push subscription of the subscriber is gone.
    NO_DEVICES = "no_devices"
    #: The address is not valid.
    INVALID_ADDRESS = "invalid_address"
    #: The provider refused permanently.
    REJECTED = "rejected"
    #: The provider failed transiently; retried at ``scheduled_for``.
    RETRYING = "retrying"
    #: Retries ran out.
    RETRIES_EXHAUSTED = "retries_exhausted"
    #: Held until the event's ``send_at``.
    SCHEDULED_SEND = "scheduled_send"
    #: The subscriber was deleted before delivery.
    SUBSCRIBER_GONE = "subscriber_gone"
    #: An operator sent a failed delivery again (``dispatcher deliveries retry``).
    OPERATOR_RETRY = "operator_retry"
    #: (event) Its data holds what no store can keep (a NUL, a lone surrogate, a number
    #: out of range), or the database refused it: it would fail the same way forever.
    INVALID_DATA = "invalid_data"
    #: (event) No worker that tried to fan it out knew its type.
    UNKNOWN_TYPE = "unknown_type"
    #: (event) Fan-out failed on it, alone, too many times.
    FANOUT_ERROR = "fanout_error"
    #: The campaign was cancelled before this delivery went out.
    CAMPAIGN_CANCELLED = "campaign_cancelled"
    #: Held to the campaign's send rate for this channel (messages per minute).
    CAMPAIGN_RATE = "campaign_rate"

    #: The recipient caused the event (``actor``), and its type does not notify actors.
    ACTOR = "actor"


class CampaignStatus(StrEnum):
    """Where a campaign (or one of its runs) stands."""

    #: Saved; starts only when someone starts it.
    DRAFT = "draft"
    #: Beat starts it at ``next_run_at``.
    SCHEDULED = "scheduled"
    #: A run is creating and sending its chunks.
    RUNNING = "running"
    #: Held between chunks; ``resume`` goes on from the cursor.
    PAUSED = "paused"
    #: Every chunk is created (sends may still be deferred, e.g. quiet hours).
    COMPLETED = "completed"
    #: Stopped for good; nothing more is sent.
    CANCELLED = "cancelled"
