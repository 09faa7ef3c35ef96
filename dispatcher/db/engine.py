"""The engine and sessions for one database, tuned per backend."""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, create_engine, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from dispatcher.db.models import Base, use_table_prefix
from dispatcher.errors import ConfigurationError, MissingExtraError
from dispatcher.extras import needs


class Store:
    """Owns the engine and hands out sessions for one database URL."""

    def __init__(self, url: str, *, echo: bool = False, table_prefix: str = "") -> None:
        try:
            parsed = make_url(url)
        except Exception as exc:  # sqlalchemy raises ArgumentError with no hint of the variable
            raise ConfigurationError(f"DISPATCHER_DATABASE_URL: cannot parse {url!r}") from exc
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.url = parsed
        use_table_prefix(table_prefix)
        self.dialect = parsed.get_backend_name()
        # A driver error's text would otherwise carry the statement's parameters (a
        # rendered title, a payload) into logs and task results: ids and reasons only.
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.dialect == "sqlite":
            # Pooled: opening a SQLite connection runs our PRAGMAs, and closing the last
            # one checkpoints the WAL; per-session connections cost more than the work.
            # An in-memory database cannot be shared by a pool of connections.
            if parsed.database in (None, "", ":memory:"):
                kwargs["poolclass"] = NullPool
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            # No pool_pre_ping: it costs a round trip per transaction, which on a busy
            # machine is as much as a statement. A connection idle for a while is
            # pinged on checkout instead (see _ping_if_idle); one in steady use is not.
            kwargs["pool_size"] = 5
            # psycopg prepares a statement server-side from its first repeat: the hot
            # path runs the same few statements hundreds of times a second.
            kwargs["connect_args"] = {"prepare_threshold": 1}
        try:
            with needs("postgres", "a PostgreSQL database"):
                self.engine: Engine = create_engine(parsed, **kwargs)
        except MissingExtraError:
            raise
        except (ImportError, NoSuchModuleError) as exc:  # mysql:// without MySQLdb, foo://
            raise ConfigurationError(
                f"DISPATCHER_DATABASE_URL: no driver for {parsed.drivername!r} ({exc}); "
                "dispatcher runs on sqlite:///path.db and postgresql+psycopg://"
            ) from None
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            event.listen(self.engine, "checkin", _note_checkin)
            event.listen(self.engine, "checkout", _ping_if_idle)
        # A forked child (a Celery pool process) must not use the parent's connections.
        engine_ref = weakref.ref(self.engine)
        os.register_at_fork(after_in_child=lambda: _forget_connections(engine_ref))
        self._writer_lock: WriterLock | None = None
        if self.dialect == "sqlite" and parsed.database not in (None, "", ":memory:"):
            self._writer_lock = WriterLock(f"{parsed.database}-writer")
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._writer_sessionmaker = sessionmaker(
            self.engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False
        )

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error.

        Pass ``write=True`` when the transaction writes. On SQLite it then takes the
        write lock up front: a deferred transaction that read a snapshot and then tries
        to write after another connection committed fails at once with "database is
        locked", without waiting for the busy timeout. Writers also queue on a
        :class:`WriterLock` first, so they wake the moment the previous one commits
        instead of polling in SQLite's busy handler.
        """
        if not write:
            with self.sessionmaker() as session, session.begin():
                yield session
            return
        if self._writer_lock is None:
            with self._writer_sessionmaker() as session, session.begin():
                yield session
            return
        with self._writer_lock, self._writer_sessionmaker() as session, session.begin():
            yield session

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection outside any transaction: each statement commits on its own,
        without the round trips of ``BEGIN`` and ``COMMIT`` (for a statement that is a
        whole transaction by itself)."""
        with self._autocommit_engine.connect() as conn:
            yield conn

    def create_all(self) -> None:
        """Create the tables directly (tests and scratch databases; use migrations otherwise)."""
        Base.metadata.create_all(self.engine)

    def ping(self) -> None:
        """Run ``SELECT 1``; raises the driver's error when the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


_IMMEDIATE = "dispatcher_sqlite_immediate"


class WriterLock:
    """One SQLite writer at a time across threads and processes, woken without polling.

    SQLite serialises writers itself, but a writer that finds the database locked
    sleeps in its busy handler (1, 2, 5, 10 … 100 ms) and retries: under steady
    contention most of a transaction's latency is that sleeping. An ``flock`` on a
    file beside the database queues writers in the kernel instead, which wakes the
    next one as soon as the lock is released. Reentrant within a thread; re-opened
    after fork (a forked child must not share its parent's lock).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._reset()
        os.register_at_fork(after_in_child=self._after_fork)

    def _reset(self) -> None:
        self._fd = None
        self._mutex = threading.RLock()
        self._depth = 0

    def _after_fork(self) -> None:
        # The inherited descriptor shares the parent's lock; closing it here does not
        # release the parent's (that needs every descriptor of it closed).
        if self._fd is not None:
            os.close(self._fd)
        self._reset()

    def __enter__(self) -> None:
        self._mutex.acquire()
        try:
            if self._depth == 0:
                if self._fd is None:
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._mutex.release()
            raise
        self._depth += 1

    def __exit__(self, *_: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()


#: A pooled PostgreSQL connection idle longer than this is pinged before use.
PING_AFTER_IDLE_SECONDS = 1.0


def _note_checkin(_dbapi_conn: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """``pool_pre_ping`` for connections idle longer than
    :data:`PING_AFTER_IDLE_SECONDS` (a server restarted since is found here, and the
    pool reconnects); one used a moment ago is only checked for a known break."""
    if getattr(dbapi_conn, "closed", False) or getattr(dbapi_conn, "broken", False):
        raise DisconnectionError("connection closed")
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
        return
    try:
        alive = record.driver_connection is not None and _ping(dbapi_conn)
    except Exception as exc:
        raise DisconnectionError(type(exc).__name__) from exc
    if not alive:
        raise DisconnectionError("ping failed")


def _ping(dbapi_conn: Any) -> bool:
    autocommit = dbapi_conn.autocommit
    if not autocommit:
        dbapi_conn.autocommit = True  # a ping must not open a transaction
    try:
        dbapi_conn.execute("SELECT 1")
    finally:
        if not autocommit:
            dbapi_conn.autocommit = False
    return True


def _forget_connections(engine_ref: weakref.ref[Engine]) -> None:
    engine = engine_ref()
    if engine is not None:
        engine.dispose(close=False)


def _sqlite_begin(conn: Any) -> None:
    immediate = conn.get_execution_options().get(_IMMEDIATE, False)
    # Straight to the driver: SQLAlchemy's execution machinery costs more than BEGIN.
    conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # autocommit at the driver; SQLAlchemy sends BEGIN
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def insert_ignore(
    session: Session,
    model: type[Base],
    rows: Sequence[dict[str, Any]],
    *,
    chunk: int = 2000,
    returning: Any = None,
) -> list[Any]:
    """Insert rows, silently skipping those that collide with a unique constraint.

    With ``returning`` (a column or a tuple of columns), return those columns of the
    rows actually inserted: scalars for one column, row tuples for several.
    """
    if not rows:
        return []
    table = cast(Table, model.__table__)
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing()
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        stmt = insert(table).prefix_with("IGNORE")
    single = returning is not None and not isinstance(returning, tuple)
    if returning is not None:
        stmt = stmt.returning(*((returning,) if single else returning))
    # Core, not ORM: the ORM's bulk-insert bookkeeping costs more than the insert.
    conn = session.connection()
    inserted: list[Any] = []
    for start in range(0, len(rows), chunk):
        result = conn.execute(stmt, list(rows[start : start + chunk]))
        if returning is not None:
            inserted.extend(result.scalars() if single else (tuple(r) for r in result))
    return inserted
