"""``notify`` in Django's transaction: the transactional outbox for Django.

When the dispatcher's database is Django's (same SQLite file, same PostgreSQL
database), ``notify`` inside ``transaction.atomic()`` writes its event through Django's
own database connection, in Django's transaction: a rollback leaves nothing, and the
doorbell rings from ``transaction.on_commit``. SQLAlchemy runs its statements (and
savepoints) on that connection but never commits, rolls back or closes it: Django does.

When the databases differ, ``notify`` validates the type and payload at once (a bad
call fails inside the transaction, rolling back the business change) and stores the
event from ``transaction.on_commit``; see the README for what that guarantees.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, time
from typing import Any

from django.db import connections, transaction
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from dispatcher import EventReceipt
from dispatcher.contrib.django.conf import (
    ON_RESET,
    database_alias,
    get_dispatcher,
    shares_database,
)
from dispatcher.errors import ConfigurationError

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def notify(
    type: str,
    *,
    to: Any,
    data: Mapping[str, Any] | None = None,
    using: str | None = None,
    **options: Any,
) -> EventReceipt | None:
    """:meth:`Dispatcher.notify <dispatcher.Dispatcher.notify>` in Django's transaction.

    Parameters:
        using: The Django database whose transaction to join; the dispatcher's
            ``DATABASE_ALIAS`` by default.
        options: ``priority``, ``idempotency_key``, ``send_at``… as for ``notify``.

    Returns:
        The receipt; None when the databases differ and the call is inside a
        transaction (the event is stored when it commits).

    Raises:
        The errors of ``Dispatcher.notify``; nothing is stored.
    """
    d = get_dispatcher()
    alias = using or database_alias()
    if not connections[alias].in_atomic_block:
        return d.notify(type, to=to, data=data, **options)
    if shares_database(alias, d.settings):
        with borrowed_session(alias) as session:
            receipt = d.notify(type, to=to, data=data, session=session, **options)
        transaction.on_commit(lambda: d.ring(receipt), using=alias)
        return receipt
    d.catalog.get(type).validate(dict(data or {}))
    # robust: your data is committed by then; a failure is logged by Django, not raised
    # into the code that committed it.
    transaction.on_commit(
        lambda: d.notify(type, to=to, data=data, **options), using=alias, robust=True
    )
    return None


@contextmanager
def borrowed_session(alias: str) -> Iterator[Session]:
    """A SQLAlchemy session on Django's connection ``alias``, in its transaction."""
    engine = _engine(alias)
    with engine.connect() as conn, Session(bind=conn) as session:
        yield session
        session.flush()


def _engine(alias: str) -> Engine:
    engine = _engines.get(alias)
    if engine is None:
        with _engines_lock:
            engine = _engines.get(alias)
            if engine is None:
                engine = _engines[alias] = _borrowing_engine(alias)
    return engine


def _borrowing_engine(alias: str) -> Engine:
    d = get_dispatcher()
    wrapper = connections[alias]
    if wrapper.vendor == "postgresql":
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        if not is_psycopg3:
            raise ConfigurationError(
                f"Django database {alias!r} uses psycopg2; sharing its transaction needs "
                "psycopg 3 (pip install 'dispatcher[postgres]')"
            )

    sqlite = wrapper.vendor == "sqlite"

    def lend() -> Borrowed:
        wrapper.ensure_connection()
        return Borrowed(wrapper.connection, dates_as_text=sqlite)

    options: dict[str, Any] = {}
    if wrapper.vendor == "postgresql":
        # Its set-up would hand the raw connection to psycopg, which wants the real type.
        options["use_native_hstore"] = False
    return create_engine(
        d.store.url, creator=lend, poolclass=NullPool, hide_parameters=True, **options
    )


def forget_engines() -> None:
    """Drop the engines built over Django's connections (after a settings change)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


ON_RESET.append(forget_engines)


class Borrowed:
    """Django's DB-API connection as SQLAlchemy sees it: statements and savepoints go
    through; commit, rollback and close are Django's, so here they do nothing, and
    SQLAlchemy's per-connection set-up (a notice handler, SQL functions) is skipped so
    that Django's connection is left as Django made it."""

    __slots__ = ("_dates_as_text", "_raw")

    def __init__(self, raw: Any, *, dates_as_text: bool = False) -> None:
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_dates_as_text", dates_as_text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._raw, name, value)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        raw = self._raw.cursor(*args, **kwargs)
        return _TextDatesCursor(raw) if self._dates_as_text else raw

    def commit(self) -> None:
        """Django commits."""

    def rollback(self) -> None:
        """Django rolls back."""

    def close(self) -> None:
        """Django closes."""

    def add_notice_handler(self, *_: Any) -> None:
        """Skipped: one would pile up on Django's connection per borrowing."""

    def create_function(self, *_: Any, **__: Any) -> None:
        """Skipped: SQLAlchemy's ``regexp`` would replace Django's own."""


class _TextDatesCursor:
    """A cursor on Django's SQLite connection that gives dates and times back as the
    text SQLAlchemy stored: Django's connection has ``sqlite3`` convert columns
    declared ``DATETIME``, ``DATE`` and ``TIME`` to Python objects, and SQLAlchemy's
    SQLite types expect the text."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return (_text_dates(row) for row in self._raw)

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._raw.fetchone()
        return None if row is None else _text_dates(row)

    def fetchmany(self, *args: Any) -> list[tuple[Any, ...]]:
        return [_text_dates(row) for row in self._raw.fetchmany(*args)]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [_text_dates(row) for row in self._raw.fetchall()]


def _text_dates(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        v.isoformat(" ")
        if isinstance(v, datetime)
        else v.isoformat()
        if isinstance(v, date | time)
        else v
        for v in row
    )
