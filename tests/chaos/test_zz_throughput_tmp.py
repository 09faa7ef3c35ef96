import os, time
import pytest
from dispatcher import Dispatcher
from tests.chaos.support import seed_subscribers, settled
from tests.chaos.test_worker_killed import _sent_emails
from tests.conftest import StartWorker, wait_for
from tests.smtp_server import SmtpServer, smtp_server_fixture, smtp_server_session  # noqa

N = 2000

@pytest.mark.parametrize("variant", [{}, {"DISPATCHER_RECORD_GROUP_SIZE": "32"}, {"DISPATCHER_SMTP_POOL_SIZE": "8"}])
def test_rate(dispatcher: Dispatcher, start_worker: StartWorker, stop_worker, smtp_server: SmtpServer, variant) -> None:
    if not dispatcher.store.is_postgres:
        pytest.skip("pg only")
    stop_worker()
    start_worker(smtp_server.env(DISPATCHER_SMTP_FROM_ADDRESS="Avisos <avisos@example.com>", **variant))
    smtp_server.recorder.strict = False
    people = seed_subscribers(dispatcher, N)
    data = dict(dispatcher.catalog.get("report_generated").example)
    dispatcher.notify("report_generated", to=people, data=data)
    wait_for(lambda: _sent_emails(dispatcher) >= 200, timeout=120, interval=0.05)
    t = time.monotonic(); a = len(smtp_server.messages)
    wait_for(lambda: len(smtp_server.messages) >= N, timeout=300, interval=0.2)
    el = time.monotonic() - t
    print(f"\nVARIANT {variant}: {(N - a) / el:.0f} emails/s")
