"""Counting deliveries per subscriber and channel in Redis, atomically.

A **sliding-window log**: one sorted set per (subscriber, channel, type) holds the ids
of the deliveries let through in the last ``per_seconds``, scored by the instant they
were let through. One Lua script drops expired entries, admits what fits and, for the
rest, says when a slot frees up. Redis runs a script atomically, so any number of
workers on any number of machines agree on the count. Admitting the same delivery id
twice (a retry after a crash) counts it once.

The instant comes from the caller (``dispatcher.clock``), not from Redis, so tests can
move time; workers' clocks must agree to within the precision one cares about (NTP).

Rate limits at send time: defer what exceeds a type's cap per subscriber and channel.

Caps come from the catalog (``NotificationType.rate_limits``, e.g. ``user_activity``:
5 web pushes an hour) and are counted by :class:`dispatcher.policies.rate_limit.RateLimiter`.
Excess deliveries are deferred with reason ``rate_limited`` to the instant a slot
frees up; for types that collapse deferred deliveries, every excess delivery waits for
the *first* free slot, so they are released together and fold into one message.
``urgent`` deliveries are never rate limited. If Redis does not answer, limited
deliveries are deferred a minute rather than sent uncounted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy.orm import Session

from dispatcher import log, names
from dispatcher.catalog import RateLimit
from dispatcher.enums import Priority, Reason
from dispatcher.policies.base import Candidate, Decision, Policy
from dispatcher.settings import Settings

_SCRIPT = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local out = {}
local excess = 0
for i = 4, #ARGV do
  local member = ARGV[i]
  if redis.call('ZSCORE', key, member) then
    out[#out + 1] = 0
  elseif count < limit then
    redis.call('ZADD', key, now, member)
    count = count + 1
    entries[#entries + 1] = member
    entries[#entries + 1] = tostring(now)
    out[#out + 1] = 0
  else
    local n = #entries / 2
    if n == 0 then
      out[#out + 1] = now + window
    else
    local slot = excess % n
    local rounds = math.floor(excess / n) + 1
    out[#out + 1] = tonumber(entries[slot * 2 + 2]) + window * rounds
    end
    excess = excess + 1
  end
end
redis.call('PEXPIRE', key, window)
return out
"""


@dataclass(frozen=True)
class Admission:
    """Whether one delivery may go now, and if not, when a slot frees up."""

    allowed: bool
    retry_at: datetime | None = None


@dataclass(frozen=True)
class Request:
    """Deliveries to admit on one counter (subscriber x channel x type)."""

    subscriber_pk: int
    channel: str
    type_name: str
    limit: RateLimit
    delivery_ids: tuple[int, ...]


class RateLimiter:
    """Sliding-window counters in Redis under ``<prefix>:rate:``."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._script: Any = client.register_script(_SCRIPT)

    def key(self, subscriber_pk: int, channel: str, type_name: str) -> str:
        return names.rate_limit(self.prefix, subscriber_pk, channel, type_name)

    def admit(
        self,
        subscriber_pk: int,
        channel: str,
        type_name: str,
        limit: RateLimit,
        delivery_ids: Sequence[int],
        now: datetime,
    ) -> dict[int, Admission]:
        """Admit deliveries in order until the window is full; the rest get ``retry_at``.

        Raises:
            redis.RedisError: Redis did not answer (the caller decides what to do).
        """
        request = Request(subscriber_pk, channel, type_name, limit, tuple(delivery_ids))
        return self.admit_many([request], now)[0]

    def admit_many(self, requests: Sequence[Request], now: datetime) -> list[dict[int, Admission]]:
        """:meth:`admit` for several counters in one round trip (a pipeline of scripts,
        each still atomic on its own counter).

        Raises:
            redis.RedisError: Redis did not answer.
        """
        if not requests:
            return []
        now_ms = int(now.timestamp() * 1000)
        pipe = self.client.pipeline(transaction=False)
        for r in requests:
            self._script(
                keys=[self.key(r.subscriber_pk, r.channel, r.type_name)],
                args=[now_ms, r.limit.per_seconds * 1000, r.limit.count, *map(str, r.delivery_ids)],
                client=pipe,
            )
        results: list[dict[int, Admission]] = []
        for r, raw in zip(requests, pipe.execute(), strict=True):
            out: dict[int, Admission] = {}
            for delivery_id, value in zip(r.delivery_ids, raw, strict=True):
                if int(value) == 0:
                    out[delivery_id] = Admission(True)
                else:
                    at = datetime.fromtimestamp(int(value) / 1000, UTC)
                    out[delivery_id] = Admission(False, max(at, now + timedelta(milliseconds=1)))
            results.append(out)
        return results


#: How long to wait when the counter store is unreachable.
UNAVAILABLE_DELAY = timedelta(minutes=1)


class RateLimitPolicy(Policy):
    """Defers deliveries beyond the catalog's per-subscriber, per-channel caps."""

    name = "rate_limit"

    def __init__(self, limiter: RateLimiter | None = None) -> None:
        self._limiter = limiter

    def setup(self, settings: Settings) -> None:
        if self._limiter is None:
            client = redis.Redis.from_url(
                settings.redis_url, socket_timeout=5, socket_connect_timeout=5
            )
            self._limiter = RateLimiter(client, settings.redis_prefix)

    @property
    def limiter(self) -> RateLimiter:
        """The counter store; set by :meth:`setup` unless one was passed in."""
        if self._limiter is None:
            raise RuntimeError("RateLimitPolicy.setup() was not called")
        return self._limiter

    def close(self) -> None:
        if self._limiter is not None:
            self._limiter.client.close()

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        groups: dict[tuple[int, str, str], list[Candidate]] = {}
        for c in candidates:
            if c.priority is Priority.URGENT or c.channel not in c.type.rate_limits:
                continue
            groups.setdefault((c.recipient.id, c.channel, c.type.name), []).append(c)
        if not groups:
            return {}
        requests = []
        for (subscriber_pk, channel, type_name), members in groups.items():
            members.sort(key=lambda c: c.delivery_id)  # oldest first gets the free slots
            limit = members[0].type.rate_limits[channel]
            ids = tuple(c.delivery_id for c in members)
            requests.append(Request(subscriber_pk, channel, type_name, limit, ids))
        decisions: dict[int, Decision] = {}
        try:
            results = self.limiter.admit_many(requests, now)
        except redis.RedisError as exc:
            log.warning("rate_limit.unavailable", count=len(candidates), error=type(exc).__name__)
            for r in requests:
                for i in r.delivery_ids:
                    decisions[i] = Decision.defer(
                        now + UNAVAILABLE_DELAY,
                        Reason.RATE_LIMITED,
                        f"rate limiter unavailable ({type(exc).__name__})",
                    )
            return decisions
        for r, admissions in zip(requests, results, strict=True):
            refused = {i: a.retry_at for i, a in admissions.items() if not a.allowed}
            if not refused:
                continue
            collapse = groups[(r.subscriber_pk, r.channel, r.type_name)][0].type.collapse_deferred
            first = min(at for at in refused.values() if at is not None)
            cap = f"{r.limit.count} per {_span(r.limit.per_seconds)} on {r.channel}"
            for delivery_id, retry_at in refused.items():
                until = first if collapse else retry_at or first
                decisions[delivery_id] = Decision.defer(
                    until,
                    Reason.RATE_LIMITED,
                    f"over {cap} for {r.type_name}; until {until:%Y-%m-%d %H:%M:%S} UTC",
                )
        return decisions


def _span(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} s"
