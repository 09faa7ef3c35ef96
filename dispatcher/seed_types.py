"""The six notification types a ticket-sales backend starts with."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from dispatcher.catalog import Catalog, NotificationType, RateLimit
from dispatcher.enums import Priority

Currency = str


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TicketCreated(_Payload):
    """A seller sold a ticket."""

    ticket_id: int = Field(gt=0)
    event_name: str = Field(min_length=1, max_length=200)
    seller: str = Field(min_length=1, max_length=200)
    amount: Decimal = Field(ge=0, decimal_places=2)
    currency: Currency = Field(pattern=r"^[A-Z]{3}$")
    quantity: int = Field(default=1, ge=1)
    buyer: str | None = Field(default=None, max_length=200)
    event_date: datetime | None = None


class FieldChange(_Payload):
    field: str
    old: str | None = None
    new: str | None = None


class TicketUpdated(_Payload):
    """A ticket's details changed (seat, date, holder...)."""

    ticket_id: int = Field(gt=0)
    event_name: str = Field(min_length=1, max_length=200)
    updated_by: str = Field(min_length=1, max_length=200)
    changes: list[FieldChange] = Field(min_length=1)


class TicketCancelled(_Payload):
    """A ticket was cancelled, possibly with a refund."""

    ticket_id: int = Field(gt=0)
    event_name: str = Field(min_length=1, max_length=200)
    cancelled_by: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=500)
    refund_amount: Decimal | None = Field(default=None, ge=0, decimal_places=2)
    currency: Currency | None = Field(default=None, pattern=r"^[A-Z]{3}$")


class ReportGenerated(_Payload):
    """A periodic sales report is ready for admins."""

    report_id: int = Field(gt=0)
    report_name: str = Field(min_length=1, max_length=200)
    period_start: date
    period_end: date
    download_url: HttpUrl
    tickets_sold: int = Field(default=0, ge=0)
    revenue: Decimal = Field(default=Decimal("0"), ge=0, decimal_places=2)
    currency: Currency = Field(default="EUR", pattern=r"^[A-Z]{3}$")


class SystemAlert(_Payload):
    """Something is wrong with the platform and people must know now."""

    alert_id: str = Field(min_length=1, max_length=100)
    severity: Literal["info", "warning", "critical"]
    title: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=2000)


class UserActivity(_Payload):
    """Something happened on the subscriber's account (a login, a password change)."""

    actor: str = Field(min_length=1, max_length=200)
    action: Literal["login", "logout", "password_changed", "email_changed", "role_changed"]
    occurred_at: datetime
    ip_address: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=300)


SEED_TYPES: tuple[NotificationType, ...] = (
    NotificationType(
        name="ticket_created",
        payload=TicketCreated,
        example={
            "ticket_id": 123,
            "event_name": "Copa del Rey Final",
            "seller": "Luis",
            "amount": "45.00",
            "currency": "EUR",
            "quantity": 2,
            "buyer": "Marta",
            "event_date": "2027-04-25T20:00:00+02:00",
        },
        channels=("in_app", "web_push", "email"),
        priority=Priority.HIGH,
        category="sales",
        description="A seller sold a ticket.",
    ),
    NotificationType(
        name="ticket_updated",
        payload=TicketUpdated,
        example={
            "ticket_id": 123,
            "event_name": "Copa del Rey Final",
            "updated_by": "Luis",
            "changes": [{"field": "seat", "old": "12B", "new": "14C"}],
        },
        channels=("in_app", "web_push"),
        priority=Priority.MEDIUM,
        category="sales",
        collapse_deferred=True,
        description="A ticket's details changed.",
    ),
    NotificationType(
        name="ticket_cancelled",
        payload=TicketCancelled,
        example={
            "ticket_id": 123,
            "event_name": "Copa del Rey Final",
            "cancelled_by": "Marta",
            "reason": "Cannot attend",
            "refund_amount": "45.00",
            "currency": "EUR",
        },
        channels=("in_app", "web_push", "email"),
        priority=Priority.HIGH,
        category="sales",
        description="A ticket was cancelled.",
    ),
    NotificationType(
        name="report_generated",
        payload=ReportGenerated,
        example={
            "report_id": 7,
            "report_name": "Weekly sales",
            "period_start": "2026-11-16",
            "period_end": "2026-11-22",
            "download_url": "https://tickets.example.com/reports/7.pdf",
            "tickets_sold": 1204,
            "revenue": "54180.00",
            "currency": "EUR",
        },
        channels=("in_app", "email"),
        priority=Priority.LOW,
        category="reports",
        description="A sales report is ready.",
    ),
    NotificationType(
        name="system_alert",
        payload=SystemAlert,
        example={
            "alert_id": "payments-down",
            "severity": "critical",
            "title": "Payments are failing",
            "message": "The payment provider rejects all cards since 14:02 UTC.",
        },
        channels=("in_app", "web_push", "email"),
        priority=Priority.URGENT,
        category="system",
        critical=True,
        forced_channels=("in_app", "email"),
        push_ttl_seconds=3600,
        description="The platform has a problem people must know about now.",
    ),
    NotificationType(
        name="user_activity",
        payload=UserActivity,
        example={
            "actor": "ana@example.com",
            "action": "login",
            "occurred_at": "2026-11-27T09:15:00Z",
            "ip_address": "203.0.113.7",
            "user_agent": "Firefox 132 on Linux",
        },
        channels=("in_app", "web_push"),
        priority=Priority.LOW,
        category="activity",
        collapse_deferred=True,
        rate_limits={"web_push": RateLimit(count=5, per_seconds=3600)},
        description="Something happened on the subscriber's account.",
    ),
)


def default_catalog() -> Catalog:
    """A catalog of the seed types (the ticket app's six)."""
    return Catalog({t.name: t for t in SEED_TYPES})
