"""What a template sees: one definition for sending, previews and checks alike."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dispatcher.catalog import NotificationType
from dispatcher.channels.base import Channel
from dispatcher.enums import Priority
from dispatcher.subscribers.recipient import Recipient


def template_context(
    *,
    data: Mapping[str, Any],
    recipient: Recipient,
    notification_type: NotificationType,
    notification_id: int,
    priority: Priority,
    created_at: datetime,
    channel: Channel | None,
    extras: Mapping[str, Any] | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """The payload's fields (also as ``data``), ``recipient``, ``notification``, the
    deployment's ``extras`` and whatever the channel adds (``links`` for email)."""
    context: dict[str, Any] = {
        # Who caused the event (a subscriber id) or None; a payload field of the same
        # name wins (``notification.actor`` is always the event's).
        "actor": actor,
        **data,
        "data": data,
        "recipient": {
            "id": recipient.external_id,
            "email": recipient.email,
            "locale": recipient.locale,
            "timezone": recipient.timezone,
        },
        "notification": {
            "id": notification_id,
            "type": notification_type.name,
            "category": notification_type.category,
            "priority": priority.value,
            "created_at": created_at,
            "actor": actor,
        },
        **(extras or {}),
    }
    if channel is not None:
        context.update(channel.template_context(recipient, notification_type, notification_id))
    return context
