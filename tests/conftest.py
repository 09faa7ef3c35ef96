"""Fixtures on real services: Redis, SQLite and PostgreSQL, and a real Celery worker.

Each test run uses its own Redis database numbers (``DISPATCHER_TEST_REDIS_DB``, default
8, and the next one) and its own PostgreSQL database (created, then dropped), so
parallel runs do not meet. Within one run split over processes (``pytest -n N``, as
``scripts/test`` does), each process gets a redis-server of its own as well. Missing
services fail loudly; nothing is faked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from dispatcher import Dispatcher, Settings
from dispatcher.db.models import Base
from dispatcher.worker import Runtime
from tests.brokers import TEST_BROKER, amqp_vhost_url, delete_vhosts

ROOT = Path(__file__).resolve().parent.parent
REDIS_HOST = os.environ.get("DISPATCHER_TEST_REDIS_HOST", "127.0.0.1")
#: Set by the controller of a parallel run (``pytest -n N``): one private redis-server
#: per test process, so a test that flushes or fills Redis cannot reach another's keys.
WORKER_REDIS_PORTS = "DISPATCHER_TEST_WORKER_REDIS_PORTS"


def _redis_port() -> int:
    ports = os.environ.get(WORKER_REDIS_PORTS)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1"... in a parallel run
    if ports and worker.startswith("gw"):
        return int(ports.split(",")[int(worker[2:])])
    return int(os.environ.get("DISPATCHER_TEST_REDIS_PORT", "6379"))


REDIS_PORT = _redis_port()
#: SQLite tests use this Redis database and PostgreSQL tests the next one, so that the
#: two backends' workers never take each other's tasks.
REDIS_DB = int(os.environ.get("DISPATCHER_TEST_REDIS_DB", "8"))
REDIS_DBS = {"sqlite": REDIS_DB, "postgres": REDIS_DB + 1}


def redis_url(backend: str = "sqlite") -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DBS[backend]}"


REDIS_URL = redis_url()
#: Broker for tests that run tasks in-process: no worker listens there, so a doorbell
#: rung by such a test cannot wake a worker left running by an earlier test.
QUIET_BROKER_URL = (
    f"redis://{REDIS_HOST}:{REDIS_PORT}/{os.environ.get('DISPATCHER_TEST_QUIET_REDIS_DB', '15')}"
)
#: Fixtures that mean "this test runs a worker".
WORKER_FIXTURES = {"worker", "start_worker"}
PG_ADMIN_URL = os.environ.get(
    "DISPATCHER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test"
)
RUN_ID = uuid.uuid4().hex[:8]
PG_DB = f"dispatcher_test_{RUN_ID}"
BACKENDS = ("sqlite", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    """In the controller of a parallel run, start one redis-server per test process."""
    processes = getattr(config.option, "numprocesses", None) or 0
    if hasattr(config, "workerinput"):
        # xdist gives its processes COLUMNS=80 and LINES=24; a rich console built at import
        # would keep that width even where a test sets COLUMNS, as a terminal would not.
        for name in ("COLUMNS", "LINES"):
            os.environ.pop(name, None)
        return
    if not processes or WORKER_REDIS_PORTS in os.environ:
        return
    from tests.redis_server import PrivateRedis  # it imports this module

    folder = Path(tempfile.mkdtemp(prefix="dispatcher-test-redis-"))
    servers = [PrivateRedis(folder) for _ in range(int(processes))]
    for server in servers:
        server.start()
    config.stash[_PRIVATE_REDIS] = servers
    os.environ[WORKER_REDIS_PORTS] = ",".join(str(s.port) for s in servers)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On RabbitMQ (``DISPATCHER_TEST_BROKER=rabbitmq``) run only the tests with a worker
    fixture, minus those about Redis as the broker (marked ``redis_broker``)."""
    if TEST_BROKER != "rabbitmq":
        return
    keep, drop = [], []
    for item in items:
        uses_worker = bool(WORKER_FIXTURES & set(getattr(item, "fixturenames", ())))
        on_redis = item.get_closest_marker("redis_broker") is not None
        (keep if uses_worker and not on_redis else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionfinish(session: pytest.Session) -> None:
    delete_vhosts()


def pytest_unconfigure(config: pytest.Config) -> None:
    for server in config.stash.get(_PRIVATE_REDIS, []):
        server.stop()
    if config.stash.get(_PRIVATE_REDIS, None):
        os.environ.pop(WORKER_REDIS_PORTS, None)


_PRIVATE_REDIS = pytest.StashKey[list[Any]]()
_RUNTIMES: dict[int, tuple[Dispatcher, Runtime]] = {}


def runtime(d: Dispatcher) -> Runtime:
    """The worker side of ``d`` in this process, built once per dispatcher: tests run
    fan-out, delivery and the sweep with it instead of a worker."""
    entry = _RUNTIMES.get(id(d))
    if entry is None or entry[0] is not d:
        entry = _RUNTIMES[id(d)] = (d, Runtime(d))
    return entry[1]


def close_runtime(d: Dispatcher) -> None:
    """Close the runtime :func:`runtime` built for ``d``, if any."""
    entry = _RUNTIMES.pop(id(d), None)
    if entry is not None:
        entry[1].close()


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:  # fail, never skip: CI must notice
        pytest.fail(f"Redis is not answering at {REDIS_URL}: {exc}")
    for backend in BACKENDS:
        redis.Redis.from_url(redis_url(backend)).flushdb()
    return client


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not answering at {PG_ADMIN_URL}: {exc}")
    admin.execute(f'CREATE DATABASE "{PG_DB}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{PG_DB}".replace("postgresql://", "postgresql+psycopg://", 1)
    admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'dispatcher.db'}"


def broker_url(backend: str) -> str:
    """Where this backend's workers take their tasks: Redis, or a RabbitMQ vhost of this
    test process when the run is on RabbitMQ (tests/brokers.py)."""
    if TEST_BROKER == "rabbitmq":
        return amqp_vhost_url(f"dispatcher-test-{RUN_ID}-{backend}")
    return redis_url(backend)


def make_settings(database_url: str, **overrides: Any) -> Settings:
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    values: dict[str, Any] = {
        "database_url": database_url,
        "broker_url": broker_url(backend),
        "redis_url": redis_url(backend),
        "redis_prefix": f"dtest-{RUN_ID}",
        "types_modules": ["tests.app_types"],
        "extra_templates_dirs": [ROOT / "tests" / "templates"],
        "sweep_grace_seconds": 1,
        # In-process tests run fan-out and delivery as separate steps. Workers are not
        # told this (settings_env leaves it out), so they use the default inline path.
        "inline_delivery_limit": 0,
    }
    values.update(overrides)
    return Settings.from_env(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that make a subprocess read the same settings."""
    env = {
        "DISPATCHER_DATABASE_URL": settings.database_url,
        "DISPATCHER_BROKER_URL": settings.broker_url,
        "DISPATCHER_REDIS_URL": settings.redis_url,
        "DISPATCHER_REDIS_PREFIX": settings.redis_prefix,
        "DISPATCHER_TYPES_MODULES": '["' + '","'.join(settings.types_modules) + '"]',
        "DISPATCHER_EXTRA_TEMPLATES_DIRS": '["'
        + '","'.join(str(p) for p in settings.extra_templates_dirs)
        + '"]',
        "DISPATCHER_SWEEP_GRACE_SECONDS": str(settings.sweep_grace_seconds),
        "DISPATCHER_LEASE_SECONDS": str(settings.lease_seconds),
    }
    return env


def _truncate(d: Dispatcher) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    for attempt in range(5):
        try:
            with d.store.engine.begin() as conn:
                if d.store.is_postgres:
                    conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                else:
                    for name in tables:
                        conn.execute(text(f"DELETE FROM {name}"))
            return
        except OperationalError:
            # A worker kept from an earlier test may be in a transaction (a sweep, a
            # drain, its start-up rehearsal): PostgreSQL picks TRUNCATE as the deadlock
            # victim. Its transaction ends within moments; try again.
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


@pytest.fixture(scope="session")
def _migrated(sqlite_url: str, postgres_url: str) -> dict[str, str]:
    urls = {"sqlite": sqlite_url, "postgres": postgres_url}
    for url in urls.values():
        Dispatcher(make_settings(url)).migrate()
    return urls


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, _migrated: dict[str, str]) -> str:
    return _migrated[backend]


@pytest.fixture
def dispatcher(
    request: pytest.FixtureRequest, database_url: str, redis_client: redis.Redis
) -> Iterator[Dispatcher]:
    """A migrated, empty database on each backend, and a dispatcher on it.

    Unless the test uses a worker, its doorbell rings a broker nobody listens to.
    """
    overrides: dict[str, Any] = {}
    if not WORKER_FIXTURES & set(request.fixturenames):
        overrides["broker_url"] = QUIET_BROKER_URL
    d = Dispatcher(make_settings(database_url, **overrides))
    _truncate(d)
    # Latches an earlier test left (it rang, and no drain ran) would silence this one.
    with redis.Redis.from_url(d.settings.redis_url) as r:
        for key in r.scan_iter(f"{d.settings.redis_prefix}:fanout-latch:*"):
            r.delete(key)
    yield d
    close_runtime(d)
    d.close()


class CeleryProcess:
    """A real ``celery -A worker <command>`` in a subprocess."""

    ready_marker = b" ready."

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        extra_env: dict[str, str],
        args: list[str] | None = None,
    ) -> None:
        self.settings = settings
        self.log_path = log_path
        env = {**os.environ, **settings_env(settings), **extra_env}
        # Tests may add paths (tests/plugin_dist, whose entry points add channels).
        extra_path = [p for p in [extra_env.get("PYTHONPATH")] if p]
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *extra_path])
        self.log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", *(args or self.default_args())],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, timeout=60)

    def default_args(self) -> list[str]:
        return [
            "worker",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "-n",
            f"test-{uuid.uuid4().hex[:6]}@%h",
        ]

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"celery exited early:\n{self.log()}")
        return self.ready_marker in self.log_path.read_bytes()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


class Worker(CeleryProcess):
    """A Celery worker (prefork, two children)."""


class Beat(CeleryProcess):
    """Celery beat with ``beat_schedule.py``, its schedule file in a temporary folder."""

    ready_marker = b"beat: Starting"

    def __init__(self, settings: Settings, log_path: Path) -> None:
        schedule = log_path.with_suffix(".schedule")
        super().__init__(
            settings,
            log_path,
            {},
            ["beat", "--loglevel", "INFO", "-s", str(schedule), "--max-interval", "1"],
        )


@pytest.fixture(scope="session")
def _workers() -> Iterator[dict[str, tuple[frozenset[tuple[str, str]], Worker]]]:
    started: dict[str, tuple[frozenset[tuple[str, str]], Worker]] = {}
    yield started
    for _, w in started.values():
        w.stop()


StartWorker = Callable[..., Worker]


@pytest.fixture
def start_worker(
    backend: str,
    dispatcher: Dispatcher,
    _workers: dict[str, tuple[frozenset[tuple[str, str]], Worker]],
    tmp_path_factory: pytest.TempPathFactory,
) -> StartWorker:
    """Start (or reuse) the worker for this backend with extra environment variables.

    One worker per backend at a time: two workers on one broker would take each
    other's tasks, so asking for different variables restarts it.
    """

    def start(extra_env: dict[str, str] | None = None) -> Worker:
        key = frozenset((extra_env or {}).items())
        current = _workers.get(backend)
        if current is not None:
            current_key, w = current
            if current_key == key and w.process.poll() is None:
                return w
            w.stop()
        log_path = tmp_path_factory.mktemp("worker") / f"{backend}.log"
        w = Worker(dispatcher.settings, log_path, dict(extra_env or {}))
        _workers[backend] = (key, w)
        return w

    return start


@pytest.fixture
def stop_worker(
    backend: str, _workers: dict[str, tuple[frozenset[tuple[str, str]], Worker]]
) -> Callable[[], None]:
    """Stop this backend's worker (the next ``start_worker`` starts a fresh one)."""

    def stop() -> None:
        current = _workers.pop(backend, None)
        if current is not None:
            current[1].stop()

    return stop


@pytest.fixture
def worker(start_worker: StartWorker) -> Worker:
    """A Celery worker on the same database as ``dispatcher`` with no channel providers."""
    return start_worker()
