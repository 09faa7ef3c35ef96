"""Fixtures of the digest tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dispatcher import Dispatcher
from dispatcher.settings import SmtpSettings
from tests.conftest import Worker, close_runtime, make_settings
from tests.digests.digest_types import register_types
from tests.smtp_server import (  # noqa: F401 - fixtures
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)


@pytest.fixture
def mailer(
    dispatcher: Dispatcher,
    smtp_server: SmtpServer,
    backend: str,
    _workers: dict[str, tuple[frozenset[tuple[str, str]], Worker]],
) -> Iterator[Dispatcher]:
    """An in-process dispatcher (no worker on its broker) that emails the test SMTP
    server and digests ``ticket_updated`` by email over 15 minutes."""
    running = _workers.pop(backend, None)
    if running is not None:
        running[1].stop()
    d = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            broker_url=dispatcher.settings.broker_url,
            smtp=SmtpSettings(**smtp_server.settings()),
        )
    )
    register_types(d.catalog)
    yield d
    close_runtime(d)
    d.close()
