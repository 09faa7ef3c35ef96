"""The broker behind ``DISPATCHER_BROKER_URL``: which kind it is, whether it answers, and
how many messages wait in each queue.

Redis and RabbitMQ answer differently (a list's length; a passive queue declare), so the
CLI (``doctor``, ``stats``), the metrics and the Celery configuration ask here instead of
assuming Redis.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import amqp.exceptions
import kombu.exceptions
import redis
from kombu.connection import Connection

#: What talking to a broker that is down, refuses us or times out raises.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    redis.RedisError,
    kombu.exceptions.OperationalError,
    amqp.exceptions.AMQPError,
    OSError,
)


def is_amqp(broker_url: str) -> bool:
    """Whether ``broker_url`` names RabbitMQ (``amqp://``, ``pyamqp://``, ``amqps://``)."""
    return broker_url.split("://", 1)[0] in {"amqp", "pyamqp", "amqps"}


def ping_broker(broker_url: str, timeout: float = 2.0) -> None:
    """Return when the broker answers; raise one of :data:`BROKER_ERRORS` when not."""
    if not is_amqp(broker_url):
        client = redis.Redis.from_url(
            broker_url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            client.ping()
        finally:
            client.close()
        return
    with Connection(broker_url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=timeout)


def queue_depths(broker_url: str, queues: Sequence[str], timeout: float = 2.0) -> dict[str, int]:
    """Messages waiting in each of ``queues``: a Redis list's length, or RabbitMQ's
    message count (a queue no worker has declared yet holds nothing: 0)."""
    if not is_amqp(broker_url):
        client = redis.Redis.from_url(
            broker_url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.llen(queue)
                lengths = pipe.execute()
        finally:
            client.close()
        return {queue: int(n) for queue, n in zip(queues, lengths, strict=True)}
    depths: dict[str, int] = {}
    with Connection(broker_url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=timeout)
        for queue in queues:
            # A passive declare of a missing queue closes its channel: one per queue.
            channel = connection.channel()
            try:
                depths[queue] = int(channel.queue_declare(queue, passive=True).message_count)
            except amqp.exceptions.NotFound:
                depths[queue] = 0
            finally:
                with contextlib.suppress(*BROKER_ERRORS):
                    channel.close()
    return depths
