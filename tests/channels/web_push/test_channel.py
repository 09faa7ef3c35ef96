"""Web push end to end against the local push service, on SQLite and PostgreSQL.

In-process tests drive ``run_fanout``/``run_deliver`` with an in-memory broker (so no
worker races them); the last tests go through the real Celery worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from dispatcher import (
    DeliveryStatus,
    Dispatcher,
    InvalidSubscriptionError,
    Reason,
    UnknownSubscriberError,
)
from dispatcher.channels.web_push.channel import WebPushChannel
from dispatcher.channels.web_push.vapid import VapidKey
from dispatcher.clock import utcnow
from dispatcher.db.models import Delivery, Notification, PushSubscription, Subscriber
from dispatcher.settings import PushSettings
from tests.conftest import StartWorker, make_settings, runtime, wait_for
from tests.push_service import Device, PushService

SUBJECT = "mailto:push-tests@example.com"


@pytest.fixture(scope="session")
def vapid_key() -> VapidKey:
    return VapidKey.generate()


@pytest.fixture(scope="session")
def _push_service(vapid_key: VapidKey) -> Iterator[PushService]:
    service = PushService(expected_vapid_key=vapid_key.public_key_b64).start()
    yield service
    service.stop()


@pytest.fixture
def push_service(_push_service: PushService) -> Iterator[PushService]:
    _push_service.reset()
    yield _push_service
    _push_service.reset()


def push_env(key: VapidKey, **extra: str) -> dict[str, str]:
    return {
        "DISPATCHER_PUSH_VAPID_PRIVATE_KEY": key.private_key_b64,
        "DISPATCHER_PUSH_VAPID_PUBLIC_KEY": key.public_key_b64,
        "DISPATCHER_PUSH_VAPID_SUBJECT": SUBJECT,
        "DISPATCHER_PUSH_ALLOW_INSECURE_LOOPBACK": "true",
        "DISPATCHER_PUSH_TIMEOUT": "5",
        **extra,
    }


def push_settings(key: VapidKey, **overrides: object) -> PushSettings:
    values: dict[str, object] = {
        "vapid_private_key": SecretStr(key.private_key_b64),
        "vapid_public_key": key.public_key_b64,
        "vapid_subject": SUBJECT,
        "allow_insecure_loopback": True,
        "timeout": 5.0,
    }
    values.update(overrides)
    return PushSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def d(dispatcher: Dispatcher, vapid_key: VapidKey) -> Iterator[Dispatcher]:
    """A dispatcher with push configured whose doorbell rings nowhere (memory broker)."""
    local = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            broker_url=dispatcher.settings.broker_url,
            push=push_settings(vapid_key),
        )
    )
    yield local
    local.close()


def _channel(d: Dispatcher) -> WebPushChannel:
    channel = d.channels.get("web_push")
    assert isinstance(channel, WebPushChannel)
    return channel


def _push_rows(d: Dispatcher) -> list[Delivery]:
    with d.store.session() as s:
        return list(
            s.scalars(select(Delivery).where(Delivery.channel == "web_push").order_by(Delivery.id))
        )


def _run(d: Dispatcher, type_name: str, to: list[str], data: dict | None = None) -> list[Delivery]:
    """notify → fan out → deliver, in this process; the web_push rows afterwards."""
    notification_type = d.catalog.get(type_name)
    receipt = d.notify(type_name, to=to, data=data or dict(notification_type.example))
    runtime(d).fanout(receipt.id)
    with d.store.session() as s:
        ids = list(s.scalars(select(Delivery.id).where(Delivery.status == DeliveryStatus.PENDING)))
    runtime(d).deliver(ids)
    return _push_rows(d)


def _subscribe(d: Dispatcher, service: PushService, who: str, host: str = "127.0.0.1") -> Device:
    device = service.new_device(host)
    d.push_subscriptions.add(who, device.subscription(), user_agent="Firefox 132")
    return device


# -- subscriptions ------------------------------------------------------------------


def test_subscriptions_add_list_move_remove(d: Dispatcher, push_service: PushService) -> None:
    d.subscribers.upsert("ana")
    d.subscribers.upsert("luis")
    phone, laptop = push_service.new_device(), push_service.new_device()
    d.push_subscriptions.add("ana", phone.subscription(), user_agent="Chrome on Android")
    d.push_subscriptions.add("ana", laptop.subscription())
    assert [s.endpoint for s in d.push_subscriptions.list("ana")] == [
        phone.endpoint,
        laptop.endpoint,
    ]
    assert d.push_subscriptions.list("ana")[0].user_agent == "Chrome on Android"

    # The same browser logs in as Luis: the subscription moves, it is not duplicated.
    moved = d.push_subscriptions.add("luis", phone.subscription())
    assert moved.subscriber_id == "luis"
    assert [s.endpoint for s in d.push_subscriptions.list("ana")] == [laptop.endpoint]
    assert [s.endpoint for s in d.push_subscriptions.list("luis")] == [phone.endpoint]
    with d.store.session() as s:
        assert len(list(s.scalars(select(PushSubscription)))) == 2

    assert d.push_subscriptions.remove("ana", phone.endpoint) is False  # Luis's now
    assert d.push_subscriptions.remove("luis", phone.endpoint) is True
    assert d.push_subscriptions.list("luis") == []
    # A NUL (found by schemathesis: PostgreSQL refuses it in a text parameter) or
    # another control character matches nothing, on both backends.
    assert d.push_subscriptions.remove("ana", laptop.endpoint + "\x00") is False
    assert d.push_subscriptions.remove("ana", "\n" + laptop.endpoint) is False
    assert [s.endpoint for s in d.push_subscriptions.list("ana")] == [laptop.endpoint]


def test_bad_subscriptions_write_nothing(d: Dispatcher, push_service: PushService) -> None:
    d.subscribers.upsert("ana")
    device = push_service.new_device()
    bad = device.subscription()
    bad["keys"]["auth"] = bad["keys"]["auth"][:10]
    with pytest.raises(InvalidSubscriptionError, match="16-byte"):
        d.push_subscriptions.add("ana", bad)
    with pytest.raises(UnknownSubscriberError):
        d.push_subscriptions.add("nobody", device.subscription())
    strict = Dispatcher(make_settings(d.settings.database_url))  # loopback http not allowed
    try:
        with pytest.raises(InvalidSubscriptionError, match="https://"):
            strict.push_subscriptions.add("ana", device.subscription())
    finally:
        strict.close()
    assert d.push_subscriptions.list("ana") == []


# -- sending ------------------------------------------------------------------------


def test_every_device_gets_the_decrypted_payload_and_headers(
    d: Dispatcher, push_service: PushService
) -> None:
    d.subscribers.upsert("ana", locale="es")
    devices = [_subscribe(d, push_service, "ana") for _ in range(3)]
    rows = _run(d, "ticket_created", ["ana"])

    assert [(r.status, r.reason) for r in rows] == [(DeliveryStatus.SENT, None)]
    assert rows[0].detail == "3 of 3 devices"
    with d.store.session() as s:
        notification_id = s.scalar(select(Notification.id))
    expected = {
        "title": "Entrada vendida: Copa del Rey Final",
        "body": "Luis vendió 2 entradas por 45,00\xa0€ a Marta.",
        "url": "/tickets/123",
        "tag": f"notification-{notification_id}",
        "notification_id": notification_id,
        "type": "ticket_created",
        "priority": "high",
    }
    for device in devices:
        (got,) = push_service.for_device(device)
        assert got.json == expected
        assert got.headers["TTL"] == "86400"  # the default: ticket_created sets none
        assert got.headers["Urgency"] == "high"
        assert got.headers["Topic"] == f"notification-{notification_id}"
        assert got.headers["Content-Encoding"] == "aes128gcm"
        assert got.claims["aud"] == push_service.base_url().removesuffix("/push")
        assert got.claims["sub"] == SUBJECT
    assert push_service.rejected == []
    with d.store.session() as s:
        assert all(p.last_success_at is not None for p in s.scalars(select(PushSubscription)))


def test_type_ttl_and_urgent_priority(d: Dispatcher, push_service: PushService) -> None:
    d.subscribers.upsert("ops")
    device = _subscribe(d, push_service, "ops")
    rows = _run(d, "system_alert", ["ops"])
    assert rows[0].status is DeliveryStatus.SENT
    (got,) = push_service.for_device(device)
    assert got.headers["TTL"] == "3600"  # NotificationType.push_ttl_seconds
    assert got.headers["Urgency"] == "high"
    assert got.json["title"] == "Critical: Payments are failing"
    assert got.json["tag"] == "alert-payments-down"


def test_a_batch_goes_out_concurrently_with_one_signature_per_origin(
    d: Dispatcher, push_service: PushService
) -> None:
    people = [f"p{i}" for i in range(12)]
    for who in people:
        d.subscribers.upsert(who)
        _subscribe(d, push_service, who, host="127.0.0.1")
        _subscribe(d, push_service, who, host="localhost")  # a second push-service origin
    rows = _run(d, "ticket_updated", people)
    assert {r.status for r in rows} == {DeliveryStatus.SENT} and len(rows) == 12
    assert len(push_service.received) == 24 and push_service.rejected == []
    # Each origin saw a token whose aud is itself: no claims dict leaked between them.
    assert {r.claims["aud"] for r in push_service.received} == {
        f"http://127.0.0.1:{push_service.port}",
        f"http://localhost:{push_service.port}",
    }
    assert _channel(d).signer.signatures == 2
    assert push_service.max_in_flight > 1


def test_gone_devices_are_deleted_and_the_rest_still_get_it(
    d: Dispatcher, push_service: PushService
) -> None:
    d.subscribers.upsert("ana")
    kept = _subscribe(d, push_service, "ana")
    old = _subscribe(d, push_service, "ana")
    push_service.answer(410, device=old)
    rows = _run(d, "ticket_cancelled", ["ana"])
    assert rows[0].status is DeliveryStatus.SENT
    assert rows[0].detail == "1 of 2 devices; 1 gone"
    assert len(push_service.for_device(kept)) == 1
    assert [s.endpoint for s in d.push_subscriptions.list("ana")] == [kept.endpoint]


def test_all_devices_gone_fails_with_no_devices(d: Dispatcher, push_service: PushService) -> None:
    d.subscribers.upsert("ana")
    a, b = _subscribe(d, push_service, "ana"), _subscribe(d, push_service, "ana")
    push_service.answer(404, device=a)
    push_service.answer(410, device=b)
    rows = _run(d, "ticket_created", ["ana"])
    assert (rows[0].status, rows[0].reason) == (DeliveryStatus.FAILED, Reason.NO_DEVICES)
    assert d.push_subscriptions.list("ana") == []
    # Next time there is nothing to send to: skipped, not failed.
    rows = _run(d, "ticket_updated", ["ana"])
    assert (rows[-1].status, rows[-1].reason) == (DeliveryStatus.SKIPPED, Reason.NO_ADDRESS)


def test_throttled_push_is_retried_after_retry_after(
    d: Dispatcher, push_service: PushService
) -> None:
    d.subscribers.upsert("ana")
    _subscribe(d, push_service, "ana")
    push_service.answer(429, retry_after="120", body="slow down")
    before = utcnow()
    rows = _run(d, "ticket_created", ["ana"])
    assert (rows[0].status, rows[0].reason) == (DeliveryStatus.SCHEDULED, Reason.RETRYING)
    assert "push_throttled" in (rows[0].detail or "") and "429" in (rows[0].detail or "")
    assert rows[0].scheduled_for is not None
    wait = rows[0].scheduled_for - before
    assert timedelta(seconds=119) <= wait <= timedelta(seconds=125)


def test_server_error_is_retried_with_backoff(d: Dispatcher, push_service: PushService) -> None:
    d.subscribers.upsert("ana")
    _subscribe(d, push_service, "ana")
    push_service.answer(500, body="oops")
    rows = _run(d, "ticket_created", ["ana"])
    assert (rows[0].status, rows[0].reason) == (DeliveryStatus.SCHEDULED, Reason.RETRYING)
    assert "push_unavailable" in (rows[0].detail or "")
    assert rows[0].scheduled_for is not None and rows[0].scheduled_for > utcnow()
    assert len(d.push_subscriptions.list("ana")) == 1  # a 5xx never deletes a device


@pytest.mark.parametrize("status", [400, 403, 413])
def test_refusals_are_permanent_with_the_service_reason(
    d: Dispatcher, push_service: PushService, status: int
) -> None:
    d.subscribers.upsert("ana")
    _subscribe(d, push_service, "ana")
    push_service.answer(status, body=f"refused because {status}")
    rows = _run(d, "ticket_created", ["ana"])
    assert (rows[0].status, rows[0].reason) == (DeliveryStatus.FAILED, Reason.REJECTED)
    assert rows[0].detail == f"push service answered {status}: refused because {status}"
    assert len(d.push_subscriptions.list("ana")) == 1


def test_a_silent_push_service_times_out_into_a_retry(
    dispatcher: Dispatcher, vapid_key: VapidKey, push_service: PushService
) -> None:
    d = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            broker_url=dispatcher.settings.broker_url,
            push=push_settings(vapid_key, timeout=0.5),
        )
    )
    try:
        d.subscribers.upsert("ana")
        device = _subscribe(d, push_service, "ana")
        push_service.go_silent(device)
        started = time.monotonic()
        rows = _run(d, "ticket_created", ["ana"])
        assert time.monotonic() - started < 5
        assert (rows[0].status, rows[0].reason) == (DeliveryStatus.SCHEDULED, Reason.RETRYING)
        assert "timeout after 0.5s" in (rows[0].detail or "")
    finally:
        d.close()


def test_a_silent_push_service_does_not_hold_the_whole_batch(
    dispatcher: Dispatcher, vapid_key: VapidKey, push_service: PushService
) -> None:
    d = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            broker_url=dispatcher.settings.broker_url,
            push=push_settings(vapid_key, timeout=0.3, concurrency=1),
        )
    )
    try:
        people = [f"p{i}" for i in range(6)]
        for who in people:
            d.subscribers.upsert(who)
            push_service.go_silent(_subscribe(d, push_service, who))
        rows = _run(d, "ticket_created", people)
        assert {(r.status, r.reason) for r in rows} == {(DeliveryStatus.SCHEDULED, Reason.RETRYING)}
        details = sorted(r.detail or "" for r in rows)
        assert sum("timeout after 0.3s" in x for x in details) == 3
        assert sum("kept failing in this batch" in x for x in details) == 3
        # The other three were never sent (a loaded machine may time out before connecting).
        assert push_service.requests <= 3
    finally:
        d.close()


def test_wrong_vapid_key_is_refused_by_the_push_service(
    dispatcher: Dispatcher, push_service: PushService
) -> None:
    stranger = VapidKey.generate()
    d = Dispatcher(
        make_settings(
            dispatcher.settings.database_url,
            broker_url=dispatcher.settings.broker_url,
            push=push_settings(stranger),
        )
    )
    try:
        d.subscribers.upsert("ana")
        _subscribe(d, push_service, "ana")
        rows = _run(d, "ticket_created", ["ana"])
        assert (rows[0].status, rows[0].reason) == (DeliveryStatus.FAILED, Reason.REJECTED)
        assert "403" in (rows[0].detail or "") and "application server key" in (
            rows[0].detail or ""
        )
    finally:
        d.close()


def test_without_a_key_push_is_not_configured(dispatcher: Dispatcher) -> None:
    d = Dispatcher(
        make_settings(dispatcher.settings.database_url, broker_url=dispatcher.settings.broker_url)
    )
    try:
        d.subscribers.upsert("ana")
        rows = _run(d, "ticket_created", ["ana"])
        assert (rows[0].status, rows[0].reason) == (
            DeliveryStatus.SKIPPED,
            Reason.CHANNEL_NOT_CONFIGURED,
        )
    finally:
        d.close()


# -- through the real worker ----------------------------------------------------------


def test_worker_pushes_to_both_devices_once_and_forgets_a_gone_one(
    dispatcher: Dispatcher,
    vapid_key: VapidKey,
    push_service: PushService,
    start_worker: StartWorker,
) -> None:
    start_worker(push_env(vapid_key))
    d = Dispatcher(make_settings(dispatcher.settings.database_url, push=push_settings(vapid_key)))
    try:
        d.subscribers.upsert("seller-1", locale="en")
        phone = _subscribe(d, push_service, "seller-1")
        laptop = _subscribe(d, push_service, "seller-1")
        d.notify("ticket_created", to="seller-1", data=d.catalog.get("ticket_created").example)
        wait_for(lambda: _push_rows(d) and _push_rows(d)[0].status.is_final)
        time.sleep(0.5)  # a duplicate would arrive now
        (on_phone,), (on_laptop,) = push_service.for_device(phone), push_service.for_device(laptop)
        assert on_phone.json == on_laptop.json
        assert on_phone.json["title"] == "Ticket sold: Copa del Rey Final"
        assert on_phone.json["body"] == "Luis sold 2 tickets for €45.00 to Marta."
        assert _push_rows(d)[0].status is DeliveryStatus.SENT

        push_service.answer(410, device=laptop)
        data = dict(d.catalog.get("ticket_updated").example)
        d.notify("ticket_updated", to="seller-1", data=data)
        wait_for(lambda: len(_push_rows(d)) == 2 and _push_rows(d)[1].status.is_final)
        assert _push_rows(d)[1].status is DeliveryStatus.SENT
        assert len(push_service.for_device(phone)) == 2
        assert len(push_service.for_device(laptop)) == 1
        assert [s.endpoint for s in d.push_subscriptions.list("seller-1")] == [phone.endpoint]
    finally:
        d.close()


def test_channel_send_outcomes_for_edge_cases(d: Dispatcher, push_service: PushService) -> None:
    """Straight through ``WebPushChannel.send``: the cases the deliverer rarely reaches."""
    import socket

    from dispatcher.channels.base import Message
    from dispatcher.clock import utcnow
    from dispatcher.subscribers.recipient import Recipient

    for who in ("gone", "huge", "refused", "broken"):
        d.subscribers.upsert(who)
    _subscribe(d, push_service, "huge")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    refused = push_service.new_device()
    refused_sub = refused.subscription()
    refused_sub["endpoint"] = f"http://127.0.0.1:{closed}/push/{refused.token}"
    d.push_subscriptions.add("refused", refused_sub)
    broken = d.push_subscriptions.add("broken", push_service.new_device().subscription())
    with d.store.session() as s:  # keys written around the API
        row = s.get(PushSubscription, broken.id)
        assert row is not None
        row.p256dh = "AAAA"
    with d.store.session() as s:
        pk = {r.external_id: r.id for r in s.scalars(select(Subscriber))}
    kind = d.catalog.get("ticket_created")

    def message(i: int, who: str, body: str = "b") -> Message:
        return Message(
            delivery_id=i,
            notification_id=i,
            event_id=1,
            type=kind,
            priority=kind.priority,
            recipient=Recipient(pk[who], who, "en", "UTC"),
            content={
                "title": "t",
                "body": body,
                "url": "/" + ("x" * 5000 if who == "huge" else ""),
            },
            data={},
            attempt=1,
            created_at=utcnow(),
        )

    channel = _channel(d)
    d.channels.open(channel)
    outcomes = {
        o.delivery_id: o
        for o in d.channels.run(
            channel.send(
                [
                    message(1, "gone"),
                    message(2, "huge"),
                    message(3, "refused"),
                    message(4, "broken"),
                ]
            )
        )
    }
    assert outcomes[1].error is not None and outcomes[1].error.reason == Reason.NO_DEVICES
    assert outcomes[2].error is not None and outcomes[2].error.reason == "payload_too_large"
    assert outcomes[3].transient and "ClientConnectorError" in str(outcomes[3].error)
    assert outcomes[4].permanent and "unusable subscription" in str(outcomes[4].error)
    assert push_service.received == []


def test_the_pywebpush_claims_trap_is_real_and_the_service_catches_it(
    vapid_key: VapidKey, push_service: PushService
) -> None:
    """Why the channel signs itself: ``webpush()`` writes ``aud`` into the caller's dict,
    so reusing one dict for a second push service sends it the first one's audience."""
    from pywebpush import WebPushException, webpush

    shared: dict[str, str | int] = {"sub": SUBJECT}
    first, second = push_service.new_device("127.0.0.1"), push_service.new_device("localhost")
    for device in (first, second):
        try:
            webpush(
                device.subscription(),
                data="{}",
                vapid_private_key=vapid_key.private_key_b64,
                vapid_claims=shared,
                ttl=60,
                timeout=5,
            )
        except WebPushException as exc:
            assert device is second and exc.response.status_code == 403
    assert shared["aud"] == f"http://127.0.0.1:{push_service.port}"  # mutated
    assert len(push_service.for_device(first)) == 1 and push_service.for_device(second) == []
    assert [r.reason for r in push_service.rejected] == [
        f"VAPID: aud 'http://127.0.0.1:{push_service.port}' is not "
        f"'http://localhost:{push_service.port}'"
    ]
