"""What one gateway process shares between requests and sockets."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from starlette.concurrency import run_in_threadpool

from dispatcher.dispatcher import Dispatcher
from dispatcher.errors import NotFoundError
from dispatcher.gateway.auth import TokenVerifier
from dispatcher.gateway.hub import Hub
from dispatcher.gateway.limits import ConnectionSlots, RequestRate
from dispatcher.settings import GatewaySettings


@dataclass
class Gateway:
    """The dispatcher, the token verifier, Redis and the limits of one process."""

    dispatcher: Dispatcher
    verifier: TokenVerifier
    redis: aioredis.Redis
    hub: Hub
    rate: RequestRate
    slots: ConnectionSlots
    #: The database collector's registry, built on the first ``/metrics`` scrape.
    metrics_registry: CollectorRegistry | None = None

    @property
    def settings(self) -> GatewaySettings:
        return self.dispatcher.settings.gateway

    async def unread_count(self, subscriber_id: str) -> int:
        """The subscriber's unread count (0 for a subscriber not stored yet)."""

        def count() -> int:
            try:
                return self.dispatcher.inboxes.unread_count(subscriber_id)
            except NotFoundError:
                return 0

        return await run_in_threadpool(count)

    async def inbox_changed(self, subscriber_id: str) -> None:
        """Publish the new unread count to every socket of the subscriber, on every gateway."""
        await self.hub.publish_unread_count(subscriber_id, await self.unread_count(subscriber_id))
