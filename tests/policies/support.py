"""Fixtures for the policy tests: in-process runs with an injected clock, or a worker
that knows the test types and the ``recorder`` channel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import select

from dispatcher import Dispatcher, clock
from dispatcher.db.models import Delivery, Notification, Subscriber
from tests.conftest import ROOT, runtime
from tests.policy_types import recorded, recorder_key

#: The policy tests' own templates, kept apart so template validation of the shipped
#: folder plus ``tests/templates`` does not see these test-only types.
POLICY_TEMPLATES = ROOT / "tests" / "policies" / "templates"
#: Installed-package metadata whose entry point registers the ``recorder`` channel.
PLUGIN_DIST = ROOT / "tests" / "plugin_dist"
POLICY_WORKER_ENV = {
    "PYTHONPATH": str(PLUGIN_DIST),
    "DISPATCHER_TYPES_MODULES": '["tests.app_types","tests.policy_types"]',
    "DISPATCHER_EXTRA_TEMPLATES_DIRS": json.dumps(
        [str(ROOT / "tests" / "templates"), str(POLICY_TEMPLATES)]
    ),
}


def add_policy_templates(d: Dispatcher) -> None:
    """Let ``d`` render the policy test types (before its renderer is first used)."""
    if POLICY_TEMPLATES not in d.settings.extra_templates_dirs:
        d.settings.extra_templates_dirs.append(POLICY_TEMPLATES)
    d.__dict__.pop("renderer", None)


@contextmanager
def at(instant: datetime) -> Iterator[None]:
    """Run with the dispatcher clock stopped at ``instant``."""
    previous = clock.source
    clock.source = lambda: instant
    try:
        yield
    finally:
        clock.source = previous


def rec(d: Dispatcher) -> list[dict[str, object]]:
    """What the ``recorder`` channel sent, oldest first."""
    client = redis.Redis.from_url(d.settings.redis_url)
    try:
        return recorded(client, d.settings.redis_prefix)
    finally:
        client.close()


def reset_redis(d: Dispatcher) -> None:
    """Forget rate-limit counters and recorded messages of earlier tests (ids repeat)."""
    client = redis.Redis.from_url(d.settings.redis_url)
    prefix = d.settings.redis_prefix
    keys = [*client.scan_iter(f"{prefix}:rate:*"), recorder_key(prefix)]
    client.delete(*keys)
    client.close()


def deliveries(d: Dispatcher, event_id: int | None = None) -> dict[tuple[str, str], Delivery]:
    """Deliveries keyed by (subscriber id, channel)."""
    stmt = (
        select(Delivery, Subscriber.external_id)
        .join(Notification, Notification.id == Delivery.notification_id)
        .join(Subscriber, Subscriber.id == Notification.subscriber_id)
        .order_by(Delivery.id)
    )
    if event_id is not None:
        stmt = stmt.where(Notification.event_id == event_id)
    with d.store.session() as s:
        return {(sub, row.channel): row for row, sub in s.execute(stmt)}


def all_deliveries(d: Dispatcher) -> list[Delivery]:
    with d.store.session() as s:
        return list(s.scalars(select(Delivery).order_by(Delivery.id)))


def send(d: Dispatcher, type: str, to: str | list[str], data: dict[str, Any], **kw: Any) -> int:
    """notify, fan out and deliver in this process; returns the event id."""
    receipt = d.notify(type, to=to, data=data, **kw)
    runtime(d).fanout(receipt.id)
    ids = [row.id for row in deliveries(d, receipt.id).values()]
    runtime(d).deliver(ids)
    return receipt.id


def release(d: Dispatcher) -> list[int]:
    """What beat does: the sweep releases due rows; then deliver them here."""
    runtime(d).sweep()
    with d.store.session() as s:
        due = list(
            s.scalars(select(Delivery.id).where(Delivery.status == "pending").order_by(Delivery.id))
        )
    if due:
        runtime(d).deliver(due)
    return due


def admit_in_subprocess(args: tuple[str, str, list[int], float]) -> int:
    """Run one admission in a separate process; returns how many were let through."""
    from dispatcher import RateLimit
    from dispatcher.policies.rate_limit import RateLimiter

    url, prefix, ids, now = args
    client = redis.Redis.from_url(url)
    limiter = RateLimiter(client, prefix)
    at_ = datetime.fromtimestamp(now, UTC)
    result = limiter.admit(1, "recorder", "policy_limited", RateLimit(5, 3600), ids, at_)
    client.close()
    return sum(1 for a in result.values() if a.allowed)
