"""Operators' database versions of templates, as the renderer sees them.

The renderer must notice a version saved by another process (the CLI, an admin app)
within seconds, without a query per render. :class:`TemplateOverrides` keeps the
active versions in memory and, at most every ``refresh_seconds``, asks the database
for a fingerprint of the table (row count, newest id, sum of active ids): one
aggregate over a table of a few hundred rows. Only when the fingerprint changed does
it reload the active rows. A TTL was chosen over a check per delivery batch because it
bounds staleness even inside a long batch and keeps the renderer independent of the
delivery loop; at one cheap query per two seconds per process, it costs nothing next to
sending. Versions are append-only and ``active`` only goes from true to false (restore
writes a new version), so any change moves the fingerprint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError

from dispatcher import log
from dispatcher.db.engine import Store
from dispatcher.db.models import TemplateVersion


def template_name(type_name: str, locale: str, channel: str, part: str) -> str:
    """The Jinja name of a part: the same for a file and for its database override."""
    return f"{type_name}/{locale}/{channel}/{part}.j2"


@dataclass(frozen=True)
class Override:
    """The active database version of one template part."""

    id: int
    type: str
    channel: str
    locale: str
    part: str
    version: int
    source: str

    @property
    def name(self) -> str:
        return template_name(self.type, self.locale, self.channel, self.part)


@dataclass(frozen=True)
class OverrideSnapshot:
    """All active overrides at one moment, by template name."""

    fingerprint: tuple[Any, ...] = ()
    by_name: Mapping[str, Override] = field(default_factory=dict)


class TemplateOverrides:
    """The active overrides of one database, re-read when they change.

    Parameters:
        store: The database.
        refresh_seconds: How stale the snapshot may be; 0 checks on every call.
    """

    def __init__(self, store: Store, *, refresh_seconds: float = 2.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._snapshot = OverrideSnapshot()
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Check the database on the next :meth:`current` (after a change in this process)."""
        self._checked_at = None

    def current(self) -> OverrideSnapshot:
        """The active overrides, at most ``refresh_seconds`` old."""
        checked = self._checked_at
        if checked is not None and time.monotonic() - checked < self.refresh_seconds:
            return self._snapshot
        with self._lock:
            if self._checked_at is checked:
                self._refresh()
        return self._snapshot

    def _refresh(self) -> None:
        try:
            with self.store.session() as session:
                t = TemplateVersion
                row = session.execute(
                    select(
                        func.count(t.id),
                        func.coalesce(func.max(t.id), 0),
                        func.coalesce(func.sum(case((t.active, t.id), else_=0)), 0),
                    )
                ).one()
                fingerprint = (int(row[0]), int(row[1]), int(row[2]))
                if fingerprint != self._snapshot.fingerprint:
                    rows = session.scalars(
                        select(t).where(t.active.is_(True)).order_by(t.version)
                    ).all()
                    by_name = {}
                    for r in rows:  # ordered by version: the newest active one wins
                        o = Override(r.id, r.type, r.channel, r.locale, r.part, r.version, r.source)
                        by_name[o.name] = o
                    self._snapshot = OverrideSnapshot(fingerprint, by_name)
                    log.info("templates.overrides_loaded", count=len(by_name))
        except SQLAlchemyError as exc:
            # Keep rendering with what we had; the next check tries again.
            log.warning("templates.overrides_unavailable", error=type(exc).__name__)
        self._checked_at = time.monotonic()
