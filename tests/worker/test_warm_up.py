"""A new pool process warms up on ``worker_process_init``, before it takes work: the
first event after a worker starts must not pay for opening connections or compiling
templates (issue 14: it took 681 ms to reach a client; the next ones 8-34 ms)."""

from __future__ import annotations

import logging

import pytest
from celery import signals

from dispatcher import Dispatcher
from dispatcher.channels.in_app import InAppChannel
from dispatcher.worker import tasks
from tests.conftest import settings_env


def test_a_new_pool_process_opens_its_connections_and_templates_before_work(
    dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in settings_env(dispatcher.settings).items():
        monkeypatch.setenv(name, value)
    tasks._reset()
    try:
        with caplog.at_level(logging.INFO, logger="dispatcher"):
            # What Celery sends in a pool process after fork, before its first task.
            signals.worker_process_init.send(sender=None)
        runtime = tasks._current
        assert runtime is not None, "the process built no runtime before its first task"
        warmed = [r for r in caplog.records if r.getMessage().startswith("worker.warmed")]
        assert len(warmed) == 1
        assert warmed[0].fields["failed"] is None  # every step warmed
        d = runtime.dispatcher
        # A database connection waits in the pool (the rehearsal used it and gave it back).
        assert d.store.engine.pool.checkedin() >= 1
        # The in-app publisher is connected.
        in_app = d.channels.get("in_app")
        assert isinstance(in_app, InAppChannel)
        assert in_app._publisher is not None
        assert in_app._publisher.connection_pool._created_connections >= 1  # type: ignore[attr-defined]
        # Every template the types render in the default locale is compiled.
        compiled = len(d.renderer.text_env.cache or {}) + len(d.renderer.html_env.cache or {})
        assert compiled > 0
        # The doorbell's latch client has connected to Redis.
        assert runtime.doorbell.latch.client.connection_pool._created_connections >= 1  # type: ignore[attr-defined]
    finally:
        tasks._reset()
