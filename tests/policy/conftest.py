"""Fixtures of the policy tests (see :mod:`tests.policy.support`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dispatcher import Dispatcher
from tests.conftest import StartWorker, Worker
from tests.policy.support import POLICY_WORKER_ENV, add_policy_templates, reset_redis
from tests.policy_types import register_types, uninstall


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
    dispatcher.doorbell.app.control.purge()
    yield dispatcher
    dispatcher.doorbell.app.control.purge()
    uninstall()


@pytest.fixture
def policy_worker(dispatcher: Dispatcher, start_worker: StartWorker) -> Iterator[Worker]:
    """A real worker that loads ``tests.policy_types``."""
    register_types(dispatcher.catalog)
    add_policy_templates(dispatcher)
    reset_redis(dispatcher)
    yield start_worker(POLICY_WORKER_ENV)
    uninstall()
