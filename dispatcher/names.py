"""Every name shared between processes: Celery tasks and queues, Redis keys and channels.

Producers, workers, beat, the gateway and Flower must agree on these strings; they are
written once, here, and imported by the code and by ``beat_schedule.py`` alike.

Queues: one per priority, plus bulk and maintenance. Separate queues (rather than
broker priorities) keep urgent work from waiting behind a backlog of low-priority
messages, and let operators run dedicated workers per queue.
"""

from __future__ import annotations

from dispatcher.enums import Priority

PREFIX = "dispatcher"

# -- Celery tasks (stable: they are what Flower shows and what old messages name) --------

#: Fan out one event, or drain every due event of a kind.
FANOUT = f"{PREFIX}.fanout"
#: Claim and send a batch of deliveries.
DELIVER = f"{PREFIX}.deliver"
#: Beat: re-ring due work, take back expired leases.
SWEEP = f"{PREFIX}.sweep"
#: Beat: delete finished events past their retention.
PURGE = f"{PREFIX}.purge"
#: Create and send the next chunk of a campaign run's audience.
CAMPAIGN_CHUNK = f"{PREFIX}.campaign_chunk"
#: Beat: start due campaign runs, ring stalled ones again.
CAMPAIGN_TICK = f"{PREFIX}.campaign_tick"
#: Beat: ring scheduled events due within the next second for their time.
SCHEDULED_TICK = f"{PREFIX}.scheduled_tick"
#: Beat: send the digests whose windows have closed.
FLUSH_DIGESTS = f"{PREFIX}.flush_digests"

# -- Celery queues -----------------------------------------------------------------------

#: Campaign traffic, so a million-recipient send never delays transactional mail.
BULK = f"{PREFIX}.bulk"
#: Beat's periodic work (sweep, release, purge).
MAINTENANCE = f"{PREFIX}.maintenance"

#: Queues in the order a worker should prefer them.
ALL: tuple[str, ...] = (
    f"{PREFIX}.urgent",
    f"{PREFIX}.high",
    MAINTENANCE,
    f"{PREFIX}.medium",
    f"{PREFIX}.low",
    BULK,
)


def for_priority(priority: Priority | str, *, bulk: bool = False) -> str:
    """The queue for work of ``priority``; campaign work goes to :data:`BULK`
    unless it is urgent."""
    priority = Priority(priority)
    if bulk and priority is not Priority.URGENT:
        return BULK
    return f"{PREFIX}.{priority.value}"


# -- Redis keys and pub/sub channels (``prefix`` is DISPATCHER_REDIS_PREFIX) --------------


def inbox_channel(prefix: str, subscriber_external_id: str) -> str:
    """The pub/sub channel that carries one subscriber's real-time messages; the
    gateway subscribes to ``inbox_channel(prefix, "*")``."""
    return f"{prefix}:inbox:{subscriber_external_id}"


def fanout_latch(
    prefix: str, broker_digest: str, priority: Priority, kind: str, slot: int = 0
) -> str:
    """The latch saying a draining fan-out of ``kind`` (``direct``/``campaign``) and
    ``priority`` is on its way on the broker whose URL digest is ``broker_digest``; one
    key per drain ``slot`` (slot 0 keeps the name it had before slots existed)."""
    key = f"{prefix}:fanout-latch:{broker_digest}:{priority.value}:{kind}"
    return key if slot == 0 else f"{key}:{slot}"


def fanout_latch_pattern(prefix: str) -> str:
    """Every fan-out latch under ``prefix`` (for ``SCAN``)."""
    return f"{prefix}:fanout-latch:*"


def rate_limit(prefix: str, subscriber_pk: int, channel: str, type_name: str) -> str:
    """The sorted set of recent sends counted by a rate limit."""
    return f"{prefix}:rate:{subscriber_pk}:{channel}:{type_name}"


def gateway_request_rate(prefix: str, token_key: str, window: int) -> str:
    """A gateway caller's request counter for one window."""
    return f"{prefix}:gw:rate:{token_key}:{window}"


def gateway_connections(prefix: str, subscriber_id: str) -> str:
    """The set of a subscriber's open WebSocket connections, across gateways."""
    return f"{prefix}:gw:conns:{subscriber_id}"


def gateway_client(prefix: str) -> str:
    """The Redis ``CLIENT SETNAME`` of a gateway connection."""
    return f"{prefix}:gateway"


def worker_alive(prefix: str, process: str) -> str:
    """The key a worker process (``host:pid``) keeps alive while it runs; when it has
    expired, the sweep takes back the process's claims."""
    return f"{prefix}:alive:{process}"


def take_back_turn(prefix: str) -> str:
    """Held for a few seconds by the one worker process that looks for gone processes'
    claims between its batches (:meth:`dispatcher.engine.liveness.Liveness.my_turn`)."""
    return f"{prefix}:take-back-turn"


def sweep_heartbeat(prefix: str) -> str:
    """When the beat sweep last ran (ISO time, written by the ``dispatcher.sweep``
    task): ``dispatcher doctor``'s evidence of a live beat and maintenance worker."""
    return f"{prefix}:beat:swept-at"


#: How long a sweep heartbeat lives; a stale one simply disappears.
SWEEP_HEARTBEAT_SECONDS = 3600
