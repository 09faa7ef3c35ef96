"""The real-time socket through a real worker, Redis and uvicorn, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from dispatcher import Dispatcher
from tests.conftest import Worker, wait_for
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import (
    GatewayServer,
    Socket,
    StartGateway,
    deliver,
    token,
)


def _closed_with(url: str, **kwargs: object) -> int | None:
    with connect(url, **kwargs) as ws, pytest.raises(ConnectionClosed) as info:  # type: ignore[arg-type]
        ws.recv(timeout=10)
    return info.value.rcvd.code if info.value.rcvd else None


def test_live_notification_reaches_the_socket_with_the_frontend_shape(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    with gateway.socket("ana") as ws:
        assert ws.recv() == {"type": "unread_count", "count": 0}
        dispatcher.notify("payout_sent", to="ana", data={"payout_id": 7, "amount": "3.50"})
        msg = ws.recv()
        assert msg["type"] == "notification"
        n = msg["notification"]
        assert set(n) >= {
            "id", "type", "category", "priority", "title", "body", "url", "data",
            "created_at", "read_at",
        }  # fmt: skip
        assert (n["type"], n["category"], n["title"]) == ("payout_sent", "payouts", "Payout 7 sent")
        assert n["data"] == {"payout_id": 7, "amount": "3.50"} and n["read_at"] is None
        assert "subscriber" not in msg
        assert ws.recv() == {"type": "unread_count", "count": 1}
        ws.send({"type": "ping"})
        assert ws.recv_type("pong") == {"type": "pong"}


def test_two_tabs_both_receive_and_a_read_in_one_updates_the_other(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    with gateway.socket("ana") as a, gateway.socket("ana") as b:
        a.count_until(0)
        b.count_until(0)
        dispatcher.notify("payout_sent", to="ana", data={"payout_id": 1, "amount": "1"})
        dispatcher.notify("payout_sent", to="ana", data={"payout_id": 2, "amount": "2"})
        ids_a = [a.recv_type("notification")["notification"]["id"] for _ in range(2)]
        ids_b = [b.recv_type("notification")["notification"]["id"] for _ in range(2)]
        assert sorted(ids_a) == sorted(ids_b) and len(set(ids_a)) == 2
        a.count_until(2)
        b.count_until(2)

        a.send({"type": "mark_read", "id": ids_a[0]})
        assert b.count_until(1) == 1
        assert a.count_until(1) == 1

        # A read through REST reaches both sockets as well.
        with gateway.client("ana") as http:
            assert http.post(f"/api/notifications/{ids_a[1]}/read").status_code == 200
        b.count_until(0)
        a.count_until(0)


def test_resume_after_disconnect_sends_exactly_the_missed_ones_in_order(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    with gateway.socket("ana") as ws:
        ws.count_until(0)
        dispatcher.notify("payout_sent", to="ana", data={"payout_id": 1, "amount": "1"})
        last_seen = ws.recv_type("notification")["notification"]["id"]

    missed = deliver(dispatcher, "ana", 3, start=2)

    with gateway.socket("ana") as ws:
        ws.count_until(4)
        ws.send({"type": "resume", "since": last_seen})
        replayed = []
        while (msg := ws.recv())["type"] != "resumed":
            if msg["type"] == "notification":
                replayed.append(msg["notification"]["id"])
        assert replayed == missed and msg["count"] == 3
        ws.count_until(4)
        # A second resume from the same point sends nothing twice.
        ws.send({"type": "resume", "since": last_seen})
        assert ws.recv_type("resumed")["count"] == 0
        # Live ones still arrive, once.
        dispatcher.notify("payout_sent", to="ana", data={"payout_id": 9, "amount": "9"})
        live = ws.recv_type("notification")["notification"]
        assert live["id"] > missed[-1]
        assert [m for m in ws.quiet(0.5) if m["type"] == "notification"] == []


def test_resume_by_timestamp(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    first = deliver(dispatcher, "ana", 1)
    moment = dispatcher.inboxes.get("ana", first[0]).created_at.isoformat()
    later = deliver(dispatcher, "ana", 2, start=2)
    with gateway.socket("ana") as ws:
        ws.send({"type": "resume", "since": moment})
        got = []
        while (msg := ws.recv())["type"] != "resumed":
            if msg["type"] == "notification":
                got.append(msg["notification"]["id"])
        assert got == later


def test_bad_and_expired_tokens_are_closed_with_4401(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    base = f"{gateway.ws_url}/ws/notifications"
    assert _closed_with(f"{base}/{token('ana', ttl=-10)}/") == 4401
    assert (
        _closed_with(f"{base}/{token('ana', secret='wrong-secret-of-the-right-length-32b')}/")
        == 4401
    )
    assert _closed_with(f"{base}/not-a-jwt/") == 4401
    assert _closed_with(base) == 4401
    # A token without exp is refused even when correctly signed.
    import jwt

    from tests.gateway_server import SECRET

    no_exp = jwt.encode({"sub": "ana"}, SECRET, algorithm="HS256")
    assert _closed_with(f"{base}/{no_exp}/") == 4401
    # alg=none is never accepted.
    unsigned = jwt.encode({"sub": "ana", "exp": 2**40}, None, algorithm="none")
    assert _closed_with(f"{base}/{unsigned}/") == 4401


def test_token_in_query_or_subprotocol_is_accepted(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    with Socket(connect(f"{gateway.ws_url}/ws/notifications?token={token('ana')}")) as ws:
        assert ws.recv() == {"type": "unread_count", "count": 0}
    conn = connect(
        f"{gateway.ws_url}/ws/notifications/",
        subprotocols=["bearer", token("ana")],  # type: ignore[list-item]
    )
    assert conn.subprotocol == "bearer"
    with Socket(conn) as ws:
        assert ws.recv() == {"type": "unread_count", "count": 0}


def test_someone_elses_notification_cannot_be_marked_over_the_socket(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    dispatcher.subscribers.upsert("bob")
    [bobs] = deliver(dispatcher, "bob", 1)
    with gateway.socket("ana") as ws:
        ws.count_until(0)
        ws.send({"type": "mark_read", "id": bobs})
        assert ws.recv_type("error") == {"type": "error", "error": "not_found", "id": bobs}
    assert dispatcher.inboxes.get("bob", bobs).read_at is None
    with gateway.socket("bob") as ws:
        ws.count_until(1)
        # Nothing of Bob's reaches Ana's socket.
        with gateway.socket("ana") as ana:
            ana.count_until(0)
            deliver(dispatcher, "bob", 1, start=5)
            ws.recv_type("notification")
            assert [m for m in ana.quiet(0.5) if m["type"] == "notification"] == []


def test_connections_per_subscriber_are_bounded(
    dispatcher: Dispatcher, start_gateway: StartGateway
) -> None:
    g = start_gateway({"DISPATCHER_GATEWAY_MAX_CONNECTIONS_PER_SUBSCRIBER": "2"})
    with g.socket("carl") as one, g.socket("carl") as two:
        one.recv()
        two.recv()
        assert _closed_with(f"{g.ws_url}/ws/notifications/{token('carl')}/") == 4429
        # Another subscriber is not affected.
        with g.socket("dora") as other:
            assert other.recv()["type"] == "unread_count"
    # Closing frees the slots.
    with g.socket("carl") as again:
        assert again.recv()["type"] == "unread_count"


def test_gateways_side_by_side_each_deliver_to_their_own_sockets(
    dispatcher: Dispatcher, worker: Worker, start_gateway: StartGateway
) -> None:
    first, second = start_gateway(instance=0), start_gateway(instance=1)
    assert first.port != second.port
    dispatcher.subscribers.upsert("ana")
    with first.socket("ana") as a, second.socket("ana") as b:
        a.count_until(0)
        b.count_until(0)
        dispatcher.notify("payout_sent", to="ana", data={"payout_id": 1, "amount": "1"})
        nid = a.recv_type("notification")["notification"]["id"]
        assert b.recv_type("notification")["notification"]["id"] == nid
        a.send({"type": "mark_read", "id": nid})
        b.count_until(0)


def test_tokens_never_reach_the_logs(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer
) -> None:
    dispatcher.subscribers.upsert("ana")
    secret_token = token("ana", ttl=999)
    with Socket(connect(f"{gateway.ws_url}/ws/notifications/{secret_token}/")) as ws:
        ws.recv()
    with Socket(connect(f"{gateway.ws_url}/ws/notifications?token={secret_token}")) as ws:
        ws.recv()
    import httpx

    httpx.get(
        gateway.url + "/api/notifications",
        headers={"Authorization": f"Bearer {secret_token}"},
    )
    httpx.get(gateway.url + f"/demo?token={secret_token}")
    wait_for(lambda: "/ws/notifications/***/" in gateway.log())
    log = gateway.log()
    assert secret_token not in log
    assert secret_token.split(".")[2] not in log  # not even the signature
    assert "token=***" in log


def test_a_slow_client_is_told_to_resync_and_others_are_not_held_up(
    dispatcher: Dispatcher, start_gateway: StartGateway, redis_client: object
) -> None:
    import json
    import time

    import redis

    g = start_gateway({"DISPATCHER_GATEWAY_SOCKET_QUEUE_SIZE": "4"})
    r = redis.Redis.from_url(dispatcher.settings.redis_url)
    channel = f"{dispatcher.settings.redis_prefix}:inbox:slow"
    body = "x" * 60_000
    # The client library stops reading after a few frames, so the kernel buffers fill,
    # the gateway's send blocks, and the socket's queue overflows.
    slow = Socket(connect(f"{g.ws_url}/ws/notifications/{token('slow')}/", max_queue=2))
    with slow, g.socket("fast") as fast:
        slow.recv()
        fast.recv()
        for n in range(1, 401):
            message = {
                "type": "notification",
                "subscriber": "slow",
                "notification": {"id": n, "title": "t", "body": body},
            }
            r.publish(channel, json.dumps(message))
        # Another subscriber on the same gateway still gets its messages at once.
        r.publish(
            f"{dispatcher.settings.redis_prefix}:inbox:fast",
            json.dumps({"type": "notification", "subscriber": "fast", "notification": {"id": 1}}),
        )
        assert fast.recv_type("notification", timeout=5)["notification"] == {"id": 1}
        time.sleep(0.5)
        kinds = []
        ids = []
        while True:
            try:
                msg = slow.recv(timeout=2)
            except TimeoutError:
                break
            kinds.append(msg["type"])
            if msg["type"] == "notification":
                ids.append(msg["notification"]["id"])
        assert "resync" in kinds
        assert len(ids) < 400 and ids == sorted(ids)


def test_losing_the_pubsub_connection_tells_sockets_to_resync(
    dispatcher: Dispatcher, worker: Worker, start_gateway: StartGateway
) -> None:
    import redis

    g = start_gateway(instance=7)  # its own process: the test cuts its Redis connection
    r = redis.Redis.from_url(dispatcher.settings.redis_url)
    name = f"{dispatcher.settings.redis_prefix}:gateway"
    dispatcher.subscribers.upsert("ana")
    with g.socket("ana") as ws:
        ws.count_until(0)
        ours = [c for c in r.client_list() if c.get("name") == name and int(c.get("psub", 0)) > 0]
        # The name carries this test run's prefix: only this run's gateways are cut (the
        # others have no open sockets now).
        assert ours
        for c in ours:
            r.client_kill_filter(_id=c["id"])
        assert ws.recv_type("resync", timeout=10) == {"type": "resync"}
        # The re-made subscription delivers live again.
        dispatcher.notify("payout_sent", to="ana", data={"payout_id": 1, "amount": "1"})
        assert ws.recv_type("notification")["notification"]["data"]["payout_id"] == 1
    ready = g.client().get("/readyz").json()
    assert ready["checks"]["pubsub"] == "ok"


def test_sockets_that_connect_together_do_not_beat_together(
    dispatcher: Dispatcher, start_gateway: StartGateway
) -> None:
    """Each socket's first heartbeat message, and its first protocol ping, come at a
    random point of the first interval, then one every interval: a restarted gateway's
    clients, all reconnecting at once, would otherwise be served in one burst for good
    (1,000 heartbeats at once held live messages back by up to 360 ms in
    bench.realtime)."""
    import threading
    import time

    from websockets.frames import Opcode
    from websockets.sync.client import ClientConnection

    interval = 2.0
    g = start_gateway({"DISPATCHER_GATEWAY_HEARTBEAT_SECONDS": str(interval)})
    beats: dict[int, list[float]] = {}
    pings: dict[int, list[float]] = {}

    def listen(i: int) -> None:
        dispatcher.subscribers.upsert(f"hb{i}")
        mine_pings = pings[i] = []
        opened = [0.0]

        class Watching(ClientConnection):
            def process_event(self, event: Any) -> None:
                if getattr(event, "opcode", None) is Opcode.PING:
                    mine_pings.append(time.monotonic() - opened[0])
                super().process_event(event)

        url = f"{g.ws_url}/ws/notifications/{token(f'hb{i}')}/"
        opened[0] = time.monotonic()
        with connect(url, create_connection=Watching, ping_interval=None) as ws:
            mine = beats[i] = []
            while len(mine) < 2 or len(mine_pings) < 2:
                body = ws.recv(timeout=2 * interval + 5)
                if '"heartbeat"' in str(body):
                    mine.append(time.monotonic() - opened[0])

    threads = [threading.Thread(target=listen, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=3 * interval + 15)
    for times in (beats, pings):
        assert sorted(times) == list(range(12)) and all(len(b) >= 2 for b in times.values())
        firsts = sorted(b[0] for b in times.values())
        # Within the first interval, and spread over it (12 uniform draws all within
        # 0.5 s of each other: about 1 in 300,000).
        assert firsts[-1] <= interval + 0.5, firsts
        assert firsts[-1] - firsts[0] >= 0.5, firsts
        # Then one every interval.
        for first, second, *_ in times.values():
            assert interval - 0.3 <= second - first <= interval + 0.7, (first, second)
