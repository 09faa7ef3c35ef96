"""An SMS channel written outside the package, as an app would write one.

Registered only through the entry point in ``tests/plugin_dist`` (for workers) or
``Dispatcher(channels=...)`` (in the test process): nothing in ``dispatcher/`` names
it. It "sends" by appending to a Redis list, so a test sees what left the worker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis
from pydantic import BaseModel

from dispatcher import Catalog, Channel, Message, NotificationType, Outcome


def outbox_key(prefix: str) -> str:
    return f"{prefix}:sms-outbox"


class SmsChannel(Channel):
    """Text messages to the subscriber's ``phone`` attribute."""

    name = "sms"
    parts = ("text",)
    address_kind = "phone"

    async def send(self, messages: Sequence[Message]) -> Sequence[Outcome]:
        if not messages:
            return []
        client = redis.Redis.from_url(self.settings.redis_url)
        try:
            client.rpush(
                outbox_key(self.settings.redis_prefix),
                *[
                    json.dumps(
                        {
                            "delivery_id": m.delivery_id,
                            "to": m.recipient.address("phone"),
                            "text": m.content["text"],
                        }
                    )
                    for m in messages
                ],
            )
        finally:
            client.close()
        return [Outcome.sent(m.delivery_id, provider_id=f"sms-{m.delivery_id}") for m in messages]


class Code(BaseModel):
    code: str


def register_types(catalog: Catalog) -> None:
    """The DISPATCHER_TYPES_MODULES hook: a type sent by SMS only."""
    if "sms_code" not in catalog:
        catalog.register(
            NotificationType(
                name="sms_code",
                payload=Code,
                example={"code": "123456"},
                channels=("sms",),
                forced_channels=(),
                category="security",
            )
        )
