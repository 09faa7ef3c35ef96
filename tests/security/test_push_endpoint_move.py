"""Item 6 of the security issue: a push endpoint moving between subscribers.

The rule (``dispatcher.push_subscriptions``): an endpoint stored for someone else moves
only when offered with the same keys (the same browser, logged in as someone else),
and the move is recorded; with other keys it is refused. The previous owner's pending
pushes never go to the moved browser: devices are picked when a push is sent.

Real local push service (it decrypts with each device's own keys), real gateway, real
worker; SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from dispatcher import DeliveryStatus, Dispatcher, PushEndpointTakenError, Reason
from dispatcher.channels.web_push.vapid import VapidKey
from dispatcher.db.models import Delivery, Notification, PushSubscription, Subscriber
from tests.channels.web_push import test_channel as web_push
from tests.channels.web_push.test_channel import push_env, push_settings
from tests.conftest import StartWorker, make_settings, runtime, wait_for
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import StartGateway
from tests.push_service import Device, PushService

# The push tests' fixtures: a VAPID key, the local push service, a push-ready dispatcher.
vapid_key = web_push.vapid_key
_push_service = web_push._push_service
push_service = web_push.push_service
d = web_push.d


def _pk(d: Dispatcher, external_id: str) -> int:
    with d.store.session() as s:
        pk = s.scalar(select(Subscriber.id).where(Subscriber.external_id == external_id))
    assert pk is not None
    return pk


def _row(d: Dispatcher, device: Device) -> PushSubscription:
    with d.store.session() as s:
        row = s.scalar(select(PushSubscription).where(PushSubscription.endpoint == device.endpoint))
        assert row is not None
        s.expunge(row)
        return row


def _pending_push_for(d: Dispatcher, who: str) -> list[int]:
    """Notify ``who`` and fan out, in this process; the pending web_push delivery ids."""
    receipt = d.notify("ticket_created", to=who, data=dict(d.catalog.get("ticket_created").example))
    runtime(d).fanout(receipt.id)
    with d.store.session() as s:
        return list(
            s.scalars(
                select(Delivery.id)
                .join(Notification, Notification.id == Delivery.notification_id)
                .where(Notification.event_id == receipt.id)
                .where(Delivery.channel == "web_push")
                .where(Delivery.status == DeliveryStatus.PENDING)
            )
        )


def _delivery(d: Dispatcher, delivery_id: int) -> Delivery:
    with d.store.session() as s:
        row = s.get(Delivery, delivery_id)
        assert row is not None
        s.expunge(row)
        return row


def test_another_subscribers_endpoint_with_other_keys_is_refused(
    d: Dispatcher, push_service: PushService, vapid_key: VapidKey, start_gateway: StartGateway
) -> None:
    d.subscribers.upsert("bob")
    d.subscribers.upsert("alice")
    bobs = push_service.new_device()
    d.push_subscriptions.add("bob", bobs.subscription(), user_agent="Firefox 132")
    alices_keys = push_service.new_device().subscription()["keys"]

    # In the library: refused, nothing changes.
    with pytest.raises(PushEndpointTakenError, match="registered to another subscriber"):
        d.push_subscriptions.add("alice", {"endpoint": bobs.endpoint, "keys": alices_keys})

    # Through the gateway, with alice's token: 409, and still nothing changes.
    g = start_gateway(
        {
            "DISPATCHER_PUSH_VAPID_PRIVATE_KEY": vapid_key.private_key_b64,
            "DISPATCHER_PUSH_ALLOW_INSECURE_LOOPBACK": "true",
        }
    )
    with g.client("alice") as alice:
        taken = alice.post(
            "/api/push/subscriptions", json={"endpoint": bobs.endpoint, "keys": alices_keys}
        )
        assert taken.status_code == 409, taken.text
        assert "registered to another subscriber" in taken.json()["detail"]
        assert "bob" not in taken.text  # who has it is not told
        assert alice.get("/api/push/subscriptions").json() == []
    assert [s.endpoint for s in d.push_subscriptions.list("bob")] == [bobs.endpoint]
    row = _row(d, bobs)
    assert (row.subscriber_id, row.moved_from_subscriber_id, row.moved_at) == (
        _pk(d, "bob"),
        None,
        None,
    )
    assert row.p256dh == bobs.p256dh and row.user_agent == "Firefox 132"
    wait_for(lambda: "push.subscription_move_refused" in g.log())
    assert "reason=keys_differ" in g.log()

    # Bob's pushes still reach bob's browser, readable with bob's keys.
    (delivery_id,) = _pending_push_for(d, "bob")
    runtime(d).deliver([delivery_id])
    assert _delivery(d, delivery_id).status is DeliveryStatus.SENT
    (got,) = push_service.for_device(bobs)
    assert got.json["type"] == "ticket_created"
    assert push_service.rejected == []


def test_the_same_browser_moves_with_a_record_and_leaves_the_old_owners_pushes_behind(
    d: Dispatcher, push_service: PushService
) -> None:
    d.subscribers.upsert("bob")
    d.subscribers.upsert("alice")
    phone, laptop = push_service.new_device(), push_service.new_device()
    d.push_subscriptions.add("bob", phone.subscription())
    d.push_subscriptions.add("bob", laptop.subscription())
    (before_move,) = _pending_push_for(d, "bob")
    runtime(d).deliver([before_move])  # both devices work: last_success_at is set
    assert _row(d, laptop).last_success_at is not None
    (pending,) = _pending_push_for(d, "bob")  # waits while the laptop changes hands

    # Bob logs out on the laptop, alice logs in: the browser offers the same keys.
    started = time.time()
    moved = d.push_subscriptions.add("alice", laptop.subscription())
    assert moved.subscriber_id == "alice"
    row = _row(d, laptop)
    assert row.subscriber_id == _pk(d, "alice")
    assert row.moved_from_subscriber_id == _pk(d, "bob")
    assert row.moved_at is not None and row.moved_at.timestamp() >= started - 1
    assert row.last_success_at is None  # nothing reached alice there yet
    assert [s.endpoint for s in d.push_subscriptions.list("bob")] == [phone.endpoint]

    # Bob's pending push goes to the device he still has, not to alice's laptop.
    runtime(d).deliver([pending])
    assert _delivery(d, pending).status is DeliveryStatus.SENT
    assert _delivery(d, pending).detail == "1 of 1 devices"
    assert len(push_service.for_device(phone)) == 2
    assert len(push_service.for_device(laptop)) == 1  # the one from before the move

    # Once bob has no device left, his pending push is skipped, and sent nowhere.
    (last,) = _pending_push_for(d, "bob")
    d.push_subscriptions.add("alice", phone.subscription())
    runtime(d).deliver([last])
    assert (_delivery(d, last).status, _delivery(d, last).reason) == (
        DeliveryStatus.SKIPPED,
        Reason.NO_ADDRESS,
    )
    assert len(push_service.for_device(phone)) == 2
    assert len(push_service.for_device(laptop)) == 1

    # Alice's own pushes reach both browsers now.
    (hers,) = _pending_push_for(d, "alice")
    runtime(d).deliver([hers])
    assert _delivery(d, hers).detail == "2 of 2 devices"
    assert len(push_service.for_device(laptop)) == 2
    assert push_service.rejected == []

    # Deleting bob keeps alice's browsers; the record of where they came from goes.
    assert d.subscribers.delete("bob")
    assert [s.endpoint for s in d.push_subscriptions.list("alice")] == [
        phone.endpoint,
        laptop.endpoint,
    ]
    assert _row(d, laptop).moved_from_subscriber_id is None


@pytest.fixture
def pushing(dispatcher: Dispatcher, vapid_key: VapidKey) -> Iterator[Dispatcher]:
    """A dispatcher with push configured on the real broker (a worker test)."""
    local = Dispatcher(
        make_settings(dispatcher.settings.database_url, push=push_settings(vapid_key))
    )
    yield local
    local.close()


def test_a_worker_never_sends_the_previous_owners_pending_push_to_the_moved_browser(
    pushing: Dispatcher,
    vapid_key: VapidKey,
    push_service: PushService,
    start_worker: StartWorker,
    stop_worker: Callable[[], None],
) -> None:
    d = pushing
    start_worker(push_env(vapid_key))
    d.subscribers.upsert("bob")
    d.subscribers.upsert("alice")
    phone, laptop = push_service.new_device(), push_service.new_device()
    d.push_subscriptions.add("bob", phone.subscription())
    d.push_subscriptions.add("bob", laptop.subscription())

    stop_worker()
    # Bob's event is stored and rung while no worker runs: its push is pending...
    d.notify("ticket_created", to="bob", data=dict(d.catalog.get("ticket_created").example))
    # ...when the laptop changes hands.
    d.push_subscriptions.add("alice", laptop.subscription())
    start_worker(push_env(vapid_key))

    def bobs_push() -> Delivery | None:
        with d.store.session() as s:
            row = s.scalar(select(Delivery).where(Delivery.channel == "web_push"))
            if row is None or not row.status.is_final:
                return None
            s.expunge(row)
            return row

    done = wait_for(bobs_push, timeout=60)
    assert done.status is DeliveryStatus.SENT and done.detail == "1 of 1 devices"
    time.sleep(0.5)  # a stray push to the laptop would arrive now
    assert len(push_service.for_device(phone)) == 1
    assert push_service.for_device(laptop) == []

    data = dict(d.catalog.get("ticket_updated").example)
    d.notify("ticket_updated", to="alice", data=data)
    wait_for(lambda: push_service.for_device(laptop), timeout=60)
    (hers,) = push_service.for_device(laptop)
    assert hers.json["type"] == "ticket_updated"
    assert push_service.rejected == []
