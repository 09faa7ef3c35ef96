"""Two gateways behind one address (a TCP balancer), 500 WebSocket clients spread over
both. One gateway is SIGKILLed while notifications are going out: its clients reconnect
through the same address to the survivor, send ``resume`` from the last id they saw,
and in the end every client has every one of its notifications, once."""

from __future__ import annotations

import time

from sqlalchemy import select

from dispatcher import Dispatcher
from dispatcher.db.models import Notification, Subscriber
from tests.chaos.balancer import Balancer
from tests.chaos.support import LONG, Reconciliation, report, seed_subscribers
from tests.chaos.ws_clients import Crowd
from tests.conftest import Worker, wait_for
from tests.gateway_server import *  # noqa: F403 - fixtures
from tests.gateway_server import StartGateway, token

CLIENTS = 500
ROUNDS = 10 if LONG else 5


def _notify_round(d: Dispatcher, people: list[str], n: int) -> None:
    d.notify("payout_sent", to=people, data={"payout_id": n, "amount": f"{n}.00"})


def _expected(d: Dispatcher) -> dict[str, set[int]]:
    with d.store.session() as s:
        rows = s.execute(
            select(Subscriber.external_id, Notification.id).join(
                Notification, Notification.subscriber_id == Subscriber.id
            )
        ).all()
    out: dict[str, set[int]] = {}
    for who, nid in rows:
        out.setdefault(who, set()).add(nid)
    return out


def _all_fanned_out(d: Dispatcher) -> dict[str, set[int]] | None:
    expected = _expected(d)
    return expected if sum(len(ids) for ids in expected.values()) == CLIENTS * ROUNDS else None


def _first_round_stuck(d: Dispatcher, crowd: Crowd) -> str:
    """What the first round's wait saw, for a failure to explain itself."""
    waiting = [c for c in crowd.clients if not c.last]
    with d.store.session() as s:
        stored = len(s.scalars(select(Notification.id)).all())
    return (
        f"{len(waiting)} clients never saw the first round; {stored} notifications stored; "
        f"{crowd.connected} connected; of those waiting, connects "
        f"{sorted({c.connects for c in waiting})}, resumes {sorted({c.resumes for c in waiting})}"
    )


def test_a_gateway_killed_with_500_clients_connected_loses_nothing(
    dispatcher: Dispatcher, worker: Worker, start_gateway: StartGateway
) -> None:
    first, second = start_gateway(instance=1), start_gateway(instance=2)
    balancer = Balancer([first.port, second.port])
    people = seed_subscribers(dispatcher, CLIENTS, prefix="ws")
    crowd = Crowd(people, lambda who: f"{balancer.ws_url}/ws/notifications/{token(who, ttl=3600)}/")
    try:
        wait_for(lambda: crowd.connected == CLIENTS, timeout=120, interval=0.2)
        # Spread over both gateways by the one address.
        assert min(balancer.open[first.port], balancer.open[second.port]) >= CLIENTS // 4
        victims = balancer.open[first.port]
        started = time.monotonic()
        _notify_round(dispatcher, people, 1)
        try:
            wait_for(lambda: all(c.last for c in crowd.clients), timeout=120, interval=0.2)
        except AssertionError:
            raise AssertionError(_first_round_stuck(dispatcher, crowd)) from None
        # Kill one gateway while the next rounds are on their way.
        _notify_round(dispatcher, people, 2)
        first.process.kill()
        first.process.wait()
        killed = time.monotonic()
        for n in range(3, ROUNDS + 1):
            _notify_round(dispatcher, people, n)
        # Every round fanned out (by the worker) before we know what to expect.
        expected = wait_for(lambda: _all_fanned_out(dispatcher), timeout=120, interval=0.2)
        try:
            wait_for(
                lambda: crowd.missing(lambda who: expected[who]) == 0, timeout=180, interval=0.2
            )
        except AssertionError:
            raise AssertionError(
                f"{crowd.missing(lambda who: expected[who])} notifications never reached "
                f"their clients; {crowd.connected} connected; balancer {dict(balancer.open)};"
                + "; ".join(
                    f"{c.subscriber} missed {sorted(expected[c.subscriber] - set(c.received))}"
                    f" got {sorted(c.received)} connects {c.connects} resumes {c.resumes}"
                    for c in crowd.clients
                    if expected[c.subscriber] - set(c.received)
                )[:3000]
            ) from None
        settle = time.monotonic() - killed
        time.sleep(1)  # a duplicate would arrive now
    finally:
        crowd.stop()
        balancer.stop()
    received = sum(len(c.received) for c in crowd.clients)
    duplicates = sum(c.duplicates for c in crowd.clients)
    lost = sum(len(expected[c.subscriber] - set(c.received)) for c in crowd.clients)
    result = Reconciliation(
        f"gateway SIGKILL, {CLIENTS} sockets",
        CLIENTS * ROUNDS,
        sum(len(ids) for ids in expected.values()),
        received,
        duplicates,
        lost,
        settle,
        "postgres" if dispatcher.store.is_postgres else "sqlite",
    )
    report(result)
    resumes = sum(c.resumes for c in crowd.clients)
    replayed = sum(c.resumed for c in crowd.clients)
    print(
        f"({victims} clients on the killed gateway; {resumes} resumes replayed {replayed}"
        f" notifications; {time.monotonic() - started:.1f} s in all)"
    )
    assert (lost, duplicates) == (0, 0)
    # Everyone on the killed gateway came back through the same address and resumed.
    assert resumes >= victims
    assert balancer.total[second.port] >= CLIENTS
