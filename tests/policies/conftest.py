"""Fixtures of the policy tests (see :mod:`tests.policies.support`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dispatcher import Dispatcher
from tests.conftest import StartWorker, Worker, close_runtime
from tests.policies.support import POLICY_WORKER_ENV, add_policy_templates, reset_redis
from tests.policy_types import channels, register_types


@pytest.fixture
def dispatcher(dispatcher: Dispatcher) -> Iterator[Dispatcher]:
    """The suite's dispatcher (same settings, emptied database), with the ``recorder``
    channel registered as an app registers its own: ``Dispatcher(channels=...)``."""
    d = Dispatcher(dispatcher.settings, channels=channels())
    yield d
    close_runtime(d)
    d.close()


@pytest.fixture
def inproc(
    dispatcher: Dispatcher,
    backend: str,
    _workers: dict[str, tuple[frozenset[tuple[str, str]], Worker]],
) -> Iterator[Dispatcher]:
    """A dispatcher with the test types and no worker on its broker: the test runs
    fan-out, delivery and sweep itself (doorbell messages are purged afterwards)."""
    running = _workers.pop(backend, None)
    if running is not None:
        running[1].stop()
    register_types(dispatcher.catalog)
    add_policy_templates(dispatcher)
    reset_redis(dispatcher)
    dispatcher._doorbell.app.control.purge()
    yield dispatcher
    dispatcher._doorbell.app.control.purge()


@pytest.fixture
def policy_worker(dispatcher: Dispatcher, start_worker: StartWorker) -> Iterator[Worker]:
    """A real worker that loads ``tests.policy_types``."""
    register_types(dispatcher.catalog)
    add_policy_templates(dispatcher)
    reset_redis(dispatcher)
    yield start_worker(POLICY_WORKER_ENV)
