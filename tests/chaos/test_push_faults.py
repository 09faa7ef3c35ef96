"""The push service misbehaves: 500s, then 429 with Retry-After, and some subscriptions
are gone (410). Every live device gets its push once, the gone ones are deleted, and
no device is asked again before its Retry-After has passed."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from dispatcher import DeliveryStatus, Dispatcher
from dispatcher.channels.web_push.vapid import VapidKey
from dispatcher.db.models import Notification, Subscriber
from tests.channels.web_push.test_channel import (  # noqa: F401 - fixtures
    _push_service,
    push_env,
    push_service,
    push_settings,
    vapid_key,
)
from tests.chaos.support import LONG, Reconciliation, deliveries, report, seed_subscribers, settled
from tests.conftest import Beat, StartWorker, make_settings, wait_for
from tests.push_service import Device, PushService

RECIPIENTS = 400 if LONG else 80
#: One subscriber in this many also has a second browser that unsubscribed (410).
GONE_EVERY = 8
RETRY_AFTER = 2


def test_push_500s_429_retry_after_and_gone_subscriptions(
    dispatcher: Dispatcher,
    vapid_key: VapidKey,  # noqa: F811 - the imported fixture
    push_service: PushService,  # noqa: F811
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    start_worker(
        push_env(
            vapid_key,
            DISPATCHER_PUSH_BACKOFF_BASE_SECONDS="0.5",
            DISPATCHER_PUSH_BACKOFF_CAP_SECONDS="2",
            DISPATCHER_PUSH_MAX_ATTEMPTS="30",
            DISPATCHER_LIVENESS_SECONDS="3",
        )
    )
    d = Dispatcher(make_settings(dispatcher.settings.database_url, push=push_settings(vapid_key)))
    beat = Beat(d.settings, tmp_path / "beat.log")
    try:
        people = seed_subscribers(d, RECIPIENTS, prefix="p")
        live: dict[str, Device] = {}
        gone: list[Device] = []
        for i, person in enumerate(people):
            live[person] = device = push_service.new_device()
            d.push_subscriptions.add(person, device.subscription())
            if i % GONE_EVERY == 0:
                old = push_service.new_device()
                d.push_subscriptions.add(person, old.subscription())
                push_service.answer(410, device=old)
                gone.append(old)
        # The first pushes get 500, the next ones 429 with Retry-After, then all is well.
        third = RECIPIENTS // 3
        push_service.fault_plan((500, third, None), (429, third, str(RETRY_AFTER)))
        started = time.monotonic()
        d.notify("ticket_updated", to=people, data=dict(d.catalog.get("ticket_updated").example))
        wait_for(lambda: settled(d, RECIPIENTS * 2), timeout=180, interval=0.2)
        settle = time.monotonic() - started
        time.sleep(1)  # a duplicate would arrive now
    finally:
        beat.stop()
        d.close()

    rows = deliveries(dispatcher)
    by_channel = Counter((r.channel, r.status) for r in rows)
    pushes = Counter((r.token, r.json["notification_id"]) for r in push_service.received)
    tokens = {device.token for device in live.values()}
    delivered = {token for token, _ in pushes if token in tokens}
    lost = (RECIPIENTS - by_channel["in_app", DeliveryStatus.SENT]) + (RECIPIENTS - len(delivered))
    result = Reconciliation(
        "push 500, 429 Retry-After, 410",
        RECIPIENTS * 2,
        by_channel["in_app", DeliveryStatus.SENT],
        len(pushes),
        sum(n - 1 for n in pushes.values()),
        lost,
        settle,
        "postgres" if dispatcher.store.is_postgres else "sqlite",
    )
    report(result)
    statuses = Counter(a.status for a in push_service.attempts)
    print(f"(push service answers: {dict(statuses)})")
    assert statuses[500] == third and statuses[429] == third  # the faults really happened
    assert (result.lost, result.duplicates, result.emails) == (0, 0, RECIPIENTS)
    assert by_channel["web_push", DeliveryStatus.SENT] == RECIPIENTS
    # Each live device got its own subscriber's notification, nobody else's.
    per_device = {token: n for token, n in pushes}
    with dispatcher.store.session() as s:
        by_person = dict(
            s.execute(
                select(Subscriber.external_id, Notification.id).join(
                    Notification, Notification.subscriber_id == Subscriber.id
                )
            ).all()
        )
    assert all(per_device[live[p].token] == by_person[p] for p in people)
    # 410: the gone subscriptions are deleted, the live ones kept.
    for i, person in enumerate(people):
        endpoints = [s.endpoint for s in dispatcher.push_subscriptions.list(person)]
        assert endpoints == [live[person].endpoint], (i, endpoints)
    assert not {device.token for device in gone} & {t for t, _ in pushes}
    # Retry-After honoured: no device throttled at t was asked again before t + RETRY_AFTER.
    by_token: dict[str, list[tuple[float, int]]] = {}
    for a in push_service.attempts:
        by_token.setdefault(a.token, []).append((a.at, a.status))
    throttled = 0
    for seen in by_token.values():
        for (at, status), (after, _) in itertools.pairwise(seen):
            if status == 429:
                throttled += 1
                assert after - at >= RETRY_AFTER - 0.05, (at, after)
    assert throttled == third  # every throttled push was asked again, after its wait
