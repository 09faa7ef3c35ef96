"""dispatcher: domain events in; in-app, web push and email notifications out."""

from dispatcher.catalog import Catalog, NotificationType, RateLimit
from dispatcher.channels.base import Channel, Message, Outcome, Recipient
from dispatcher.dispatcher import Dispatcher
from dispatcher.enums import DeliveryStatus, EventStatus, Priority, Reason
from dispatcher.errors import (
    AuthenticationError,
    BrokerUnavailableError,
    ConfigurationError,
    DeliveryError,
    DispatcherError,
    HeaderInjectionError,
    IdempotencyConflictError,
    InvalidAddressError,
    InvalidSubscriptionError,
    InvalidTimeZoneError,
    InvalidUnsubscribeTokenError,
    NotFoundError,
    PayloadValidationError,
    PermanentDeliveryError,
    PushEndpointTakenError,
    TemplateError,
    TemplateNotFoundError,
    TransientDeliveryError,
    UnknownEventTypeError,
    UnknownSubscriberError,
    ValidationError,
)
from dispatcher.explain import Explanation
from dispatcher.inbox import InboxItem
from dispatcher.outbox import EventReceipt
from dispatcher.push_subscriptions import PushSubscriptionInfo
from dispatcher.quiet_hours import QuietWindow
from dispatcher.settings import Settings
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
    "Message",
    "Outcome",
    "Recipient",
    # Errors
    "AuthenticationError",
    "BrokerUnavailableError",
    "ConfigurationError",
    "DeliveryError",
    "DispatcherError",
    "HeaderInjectionError",
    "IdempotencyConflictError",
    "InvalidAddressError",
    "InvalidSubscriptionError",
    "InvalidTimeZoneError",
    "InvalidUnsubscribeTokenError",
    "NotFoundError",
    "PayloadValidationError",
    "PermanentDeliveryError",
    "PushEndpointTakenError",
    "TemplateError",
    "TemplateNotFoundError",
    "TransientDeliveryError",
    "UnknownEventTypeError",
    "UnknownSubscriberError",
    "ValidationError",
]
