"""Celery beat's schedule, as plain data. Run exactly one beat (``celery -A worker beat``);
a second one is harmless but wasteful, because every periodic task claims rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dispatcher import names

SCHEDULE: dict[str, dict[str, Any]] = {
    # Re-ring lost messages, release scheduled deliveries, take back expired leases.
    "sweep": {
        "task": names.SWEEP,
        "schedule": timedelta(seconds=5),
        "options": {"queue": names.MAINTENANCE, "expires": 30},
    },
    # Delete finished events older than DISPATCHER_RETENTION_DAYS, a batch at a time.
    "purge": {
        "task": names.PURGE,
        "schedule": timedelta(minutes=10),
        "options": {"queue": names.MAINTENANCE, "expires": 600},
    },
    # Ring scheduled events due within the next second for their time (the sweep alone
    # would send them up to 5 s late).
    "scheduled_tick": {
        "task": names.SCHEDULED_TICK,
        "schedule": timedelta(seconds=1),
        "options": {"queue": names.MAINTENANCE, "expires": 5},
    },
    # Start due campaign runs (claimed: a second beat is harmless), ring stalled ones.
    "campaign_tick": {
        "task": names.CAMPAIGN_TICK,
        "schedule": timedelta(seconds=1),
        "options": {"queue": names.MAINTENANCE, "expires": 10},
    },
    # Send digests whose window closed (claimed: a second beat is harmless).
    "flush_digests": {
        "task": names.FLUSH_DIGESTS,
        "schedule": timedelta(seconds=5),
        "options": {"queue": names.MAINTENANCE, "expires": 30},
    },
}
