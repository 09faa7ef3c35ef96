"""Test-only notification types and a ``recorder`` channel for the policy tests.

The types are loaded by workers through ``DISPATCHER_TYPES_MODULES``. The ``recorder``
channel is registered from outside the package, as an app's would be: by the entry point
in ``tests/plugin_dist`` for workers, and by ``Dispatcher(channels=...)`` in the test
process (:data:`CHANNELS`). It appends each message to a Redis list, so a test sees
exactly what left the worker and when (by the dispatcher clock).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis
from pydantic import BaseModel

from dispatcher import Catalog, Channel, Message, NotificationType, Outcome, Priority, RateLimit
from dispatcher.channels import default_channels
from dispatcher.clock import utcnow


def recorder_key(prefix: str) -> str:
    return f"{prefix}:recorder"


class RecorderChannel(Channel):
    """Records messages in the Redis list ``<prefix>:recorder``."""

    name = "recorder"
    parts = ("body",)
    optional_parts = ("body",)

    async def send(self, messages: Sequence[Message]) -> Sequence[Outcome]:
        if not messages:
            return []
        client = redis.Redis.from_url(self.settings.redis_url)
        try:
            client.rpush(
                recorder_key(self.settings.redis_prefix),
                *[
                    json.dumps(
                        {
                            "delivery_id": m.delivery_id,
                            "type": m.type.name,
                            "subscriber": m.recipient.external_id,
                            "at": utcnow().isoformat(),
                        }
                    )
                    for m in messages
                ],
            )
        finally:
            client.close()
        return [Outcome.sent(m.delivery_id) for m in messages]


def recorded(client: redis.Redis, prefix: str) -> list[dict[str, object]]:
    """Everything the recorder channel sent, oldest first."""
    return [json.loads(x) for x in client.lrange(recorder_key(prefix), 0, -1)]


class Ping(BaseModel):
    n: int


TYPES = (
    NotificationType(
        name="policy_ping",
        payload=Ping,
        example={"n": 1},
        channels=("in_app", "recorder"),
        category="pings",
        collapse_deferred=True,
    ),
    NotificationType(
        name="policy_limited",
        payload=Ping,
        example={"n": 1},
        channels=("in_app", "recorder"),
        category="pings",
        rate_limits={"recorder": RateLimit(count=3, per_seconds=60)},
    ),
    NotificationType(
        name="policy_burst",
        payload=Ping,
        example={"n": 1},
        channels=("in_app", "recorder"),
        category="pings",
        collapse_deferred=True,
        rate_limits={"recorder": RateLimit(count=2, per_seconds=60)},
    ),
    NotificationType(
        name="policy_trickle",
        payload=Ping,
        example={"n": 1},
        channels=("in_app", "recorder"),
        category="pings",
        rate_limits={"recorder": RateLimit(count=1, per_seconds=2)},
    ),
    NotificationType(
        name="policy_critical",
        payload=Ping,
        example={"n": 1},
        channels=("in_app", "recorder"),
        category="alerts",
        critical=True,
        forced_channels=("in_app", "recorder"),
        priority=Priority.HIGH,
    ),
    NotificationType(
        name="broken_ping",
        payload=Ping,
        example={"n": 1},
        channels=("in_app",),
        category="pings",
    ),
)


def register_types(catalog: Catalog) -> None:
    """Add the test types (the DISPATCHER_TYPES_MODULES hook)."""
    for t in TYPES:
        if t.name not in catalog:
            catalog.register(t)


def channels() -> dict[str, type[Channel] | str]:
    """The default channels plus ``recorder``, for dispatchers in the test process."""
    return {**default_channels(), "recorder": RecorderChannel}
