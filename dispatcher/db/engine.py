"""The engine and sessions for one database, tuned per backend."""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from dispatcher.db.models import Base
from dispatcher.errors import ConfigurationError


class Store:
    """Owns the engine and hands out sessions for one database URL."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            parsed = make_url(url)
        except Exception as exc:  # sqlalchemy raises ArgumentError with no hint of the variable
            raise ConfigurationError(f"DISPATCHER_DATABASE_URL: cannot parse {url!r}") from exc
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            # Pooled: opening a SQLite connection runs our PRAGMAs, and closing the last
            # one checkpoints the WAL; per-session connections cost more than the work.
            # An in-memory database cannot be shared by a pool of connections.
            if parsed.database in (None, "", ":memory:"):
                kwargs["poolclass"] = NullPool
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["pool_size"] = 5
        self.engine: Engine = create_engine(parsed, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        # A forked child (a Celery pool process) must not use the parent's connections.
        engine_ref = weakref.ref(self.engine)
        os.register_at_fork(after_in_child=lambda: _forget_connections(engine_ref))
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._writer_sessionmaker = sessionmaker(
            self.engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False
        )

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error.

        Pass ``write=True`` when the transaction reads and then writes. On SQLite it then
        takes the write lock up front: a deferred transaction that read a snapshot and
        then tries to write after another connection committed fails at once with
        "database is locked", without waiting for the busy timeout.
        """
        maker = self._writer_sessionmaker if write else self.sessionmaker
        with maker() as session, session.begin():
            yield session

    def create_all(self) -> None:
        """Create the tables directly (tests and scratch databases; use migrations otherwise)."""
        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


_IMMEDIATE = "dispatcher_sqlite_immediate"


def _forget_connections(engine_ref: weakref.ref[Engine]) -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


def _sqlite_begin(conn: Any) -> None:
    immediate = conn.get_execution_options().get(_IMMEDIATE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # autocommit at the driver; SQLAlchemy sends BEGIN
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def insert_ignore(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]], *, chunk: int = 2000
) -> None:
    """Insert rows, silently skipping those that collide with a unique constraint."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(model).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(model).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        stmt = insert(model).prefix_with("IGNORE")
    for start in range(0, len(rows), chunk):
        session.execute(stmt, list(rows[start : start + chunk]))
