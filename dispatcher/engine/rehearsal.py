"""A rehearsal: fan-out's whole transaction, run once and rolled back, when a worker starts.

The first event a worker process fans out pays for what no later one does: compiling
each statement (SQLAlchemy's cache is per process), a PostgreSQL backend loading its
catalog for each table and planning each prepared statement, the first decisions of
each policy. Measured on PostgreSQL: about 60 ms against 15 ms for the next one. A
rehearsal pays that before the worker takes work: it stores a throw-away subscriber
and event, expands them as fan-out does (notifications, claimed deliveries, policy
decisions, the in-app store, the records), and rolls everything back. Nothing is sent
or announced (that happens only after a commit), and rate limits are not counted (the
rehearsal's type has none, or it runs as ``urgent``).
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime

from sqlalchemy import insert

from dispatcher import log
from dispatcher.catalog import Catalog
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Event, Subscriber, table
from dispatcher.engine.delivery import Deliverer
from dispatcher.engine.fanout import LOAD_EVENT, TAKE_DUE, expand
from dispatcher.enums import EventStatus, Priority

_EVENTS = table(Event)
_SUBSCRIBERS = table(Subscriber)
#: Before anything can be due: the due-events statement runs, and finds nothing.
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


class _RolledBack(Exception):
    """Ends the rehearsal's transaction with a rollback."""


class _Silence(logging.Filter):
    """Drops the rehearsal's own log lines (its empty payload fails to render, and its
    rows never existed): an operator must not read them as real deliveries."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def rehearse(store: Store, catalog: Catalog, deliverer: Deliverer, inline_limit: int) -> bool:
    """Run fan-out's statements once in a transaction that is rolled back; False if
    the catalog has no type to rehearse with."""
    types = sorted(catalog, key=lambda t: (bool(t.rate_limits), t.name))
    if not types:
        return False
    chosen = types[0]
    priority = chosen.priority if not chosen.rate_limits else Priority.URGENT
    external_id = f"rehearsal-{secrets.token_hex(8)}"
    silence = _Silence()
    log.logger.addFilter(silence)
    try:
        with store.session(write=True) as session:
            conn = session.connection()
            now = utcnow()
            if store.is_postgres:
                params = {"now": _NEVER, "due_priority": priority, "limit": 1, "skip": []}
                conn.execute(TAKE_DUE[False], params)
            conn.execute(
                insert(_SUBSCRIBERS).values(
                    external_id=external_id,
                    locale=None,
                    timezone="UTC",
                    attributes={},
                    created_at=now,
                    updated_at=now,
                )
            )
            event_id = conn.execute(
                insert(_EVENTS)
                .values(
                    type=chosen.name,
                    payload={},
                    recipients=[external_id],
                    priority=priority,
                    send_at=now,
                    status=EventStatus.PENDING,
                    created_at=now,
                    fanout_attempts=0,
                )
                .returning(_EVENTS.c.id)
            ).scalar_one()
            event = conn.execute(LOAD_EVENT, {"event_id": event_id}).one()
            expand(session, catalog, [(event_id, event)], now, deliverer, inline_limit)
            raise _RolledBack
    except _RolledBack:
        pass
    finally:
        log.logger.removeFilter(silence)
    return True
