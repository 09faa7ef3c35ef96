"""Rate limits at send time: defer what exceeds a type's cap per subscriber and channel.

Caps come from the catalog (``NotificationType.rate_limits``, e.g. ``user_activity``:
5 web pushes an hour) and are counted by :class:`dispatcher.rate_limiter.RateLimiter`.
Excess deliveries are deferred with reason ``rate_limited`` to the instant a slot
frees up; for types that collapse deferred deliveries, every excess delivery waits for
the *first* free slot, so they are released together and fold into one message.
``urgent`` deliveries are never rate limited. If Redis does not answer, limited
deliveries are deferred a minute rather than sent uncounted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import redis
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.enums import Priority, Reason
from dispatcher.policy import Candidate, Decision, Policy
from dispatcher.rate_limiter import RateLimiter, Request

#: How long to wait when the counter store is unreachable.
UNAVAILABLE_DELAY = timedelta(minutes=1)


class RateLimitPolicy(Policy):
    """Defers deliveries beyond the catalog's per-subscriber, per-channel caps."""

    name = "rate_limit"

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

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
