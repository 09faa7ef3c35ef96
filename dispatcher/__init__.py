"""dispatcher: domain events in; in-app, web push and email notifications out.

Everything an app needs is here; the rooms behind it are described in
``docs/architecture.md``.
"""

from dispatcher.campaigns import CampaignInfo, Preview, RunInfo, SegmentInfo
from dispatcher.catalog import Catalog, NotificationType, RateLimit
from dispatcher.channels.base import Channel, Message, Outcome, RetryPolicy
from dispatcher.channels.memory import MemoryChannel
from dispatcher.channels.registry import default_channels
from dispatcher.channels.web_push.subscriptions import PushSubscriptionInfo
from dispatcher.dispatcher import Dispatcher
from dispatcher.engine.explain import Explanation
from dispatcher.engine.outbox import EventReceipt
from dispatcher.enums import CampaignStatus, DeliveryStatus, EventStatus, Priority, Reason
from dispatcher.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    CampaignStateError,
    ConfigurationError,
    DatabaseNotMigratedError,
    DatabaseUnavailableError,
    DeliveriesFailedError,
    DeliveriesRetryingError,
    DeliveryError,
    DispatcherError,
    EventNotPendingError,
    HeaderInjectionError,
    IdempotencyConflictError,
    InvalidAddressError,
    InvalidArgumentError,
    InvalidCampaignError,
    InvalidClickTokenError,
    InvalidIdentifierError,
    InvalidLocaleError,
    InvalidSubscriptionError,
    InvalidTimeZoneError,
    InvalidUnsubscribeTokenError,
    MissingExtraError,
    NotFoundError,
    PayloadValidationError,
    PermanentDeliveryError,
    PushEndpointTakenError,
    SegmentInUseError,
    TaskOutcomeError,
    TemplateError,
    TemplateLimitError,
    TemplateNotFoundError,
    TransientDeliveryError,
    UnknownEventTypeError,
    UnknownSubscriberError,
    UnstorableValueError,
    ValidationError,
)
from dispatcher.policies import Candidate, Decision, Policy, default_policies
from dispatcher.policies.quiet_hours import QuietWindow
from dispatcher.settings import Settings
from dispatcher.subscribers.inbox import InboxItem
from dispatcher.subscribers.recipient import Recipient
from dispatcher.templating.checks import TemplateProblem
from dispatcher.templating.versions import EffectiveTemplate, TemplateVersionInfo

__version__ = "0.1.0"

__all__ = [
    # The entry point
    "Dispatcher",
    "Settings",
    # Types and results
    "Catalog",
    "EventReceipt",
    "Explanation",
    "InboxItem",
    "NotificationType",
    "PushSubscriptionInfo",
    "QuietWindow",
    "RateLimit",
    "EffectiveTemplate",
    "TemplateProblem",
    "TemplateVersionInfo",
    # Enums
    "DeliveryStatus",
    "EventStatus",
    "Priority",
    "Reason",
    # Writing a channel
    "Channel",
    "MemoryChannel",
    "Message",
    "Outcome",
    "Recipient",
    "RetryPolicy",
    "default_channels",
    # Writing a policy
    "Candidate",
    "Decision",
    "Policy",
    "default_policies",
    # Campaigns
    "CampaignInfo",
    "CampaignStatus",
    "Preview",
    "RunInfo",
    "SegmentInfo",
    # Errors
    "AuthenticationError",
    "BrokerUnavailableError",
    "CampaignStateError",
    "ConfigurationError",
    "DatabaseNotMigratedError",
    "DatabaseUnavailableError",
    "DeliveriesFailedError",
    "DeliveriesRetryingError",
    "DeliveryError",
    "DispatcherError",
    "EventNotPendingError",
    "HeaderInjectionError",
    "IdempotencyConflictError",
    "InvalidAddressError",
    "InvalidArgumentError",
    "InvalidCampaignError",
    "InvalidClickTokenError",
    "InvalidIdentifierError",
    "InvalidLocaleError",
    "InvalidSubscriptionError",
    "InvalidTimeZoneError",
    "InvalidUnsubscribeTokenError",
    "MissingExtraError",
    "NotFoundError",
    "PayloadValidationError",
    "PermanentDeliveryError",
    "PushEndpointTakenError",
    "SegmentInUseError",
    "TaskOutcomeError",
    "TemplateError",
    "TemplateLimitError",
    "TemplateNotFoundError",
    "TransientDeliveryError",
    "UnknownEventTypeError",
    "UnknownSubscriberError",
    "UnstorableValueError",
    "ValidationError",
]
