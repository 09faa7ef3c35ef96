"""Storage: typed SQLAlchemy models, the engine, and Alembic migrations."""

from dispatcher.db.engine import Store, insert_ignore
from dispatcher.db.models import (
    Base,
    Campaign,
    CampaignAudience,
    CampaignRun,
    Delivery,
    DeliveryStep,
    Event,
    Notification,
    Preference,
    PushSubscription,
    QuietHoursWindow,
    Subscriber,
    TemplateVersion,
)

__all__ = [
    "Base",
    "Campaign",
    "CampaignAudience",
    "CampaignRun",
    "Delivery",
    "DeliveryStep",
    "Event",
    "Notification",
    "Preference",
    "PushSubscription",
    "QuietHoursWindow",
    "Store",
    "Subscriber",
    "TemplateVersion",
    "insert_ignore",
]
