"""Hostile input through a real uvicorn gateway, on SQLite and PostgreSQL.

Items 4 and 7 of the security issue, and the hostile-input sweep:

* huge numbers, control characters, NUL, bidi marks and long strings in socket messages
  get a precise ``bad_request`` and the socket stays open (a ``ping`` still answers);
* the same through REST gets a 4xx that names the field, never a 5xx;
* a request head that is too long or too slow is answered and closed at once, instead of
  holding the connection (raw sockets, so nothing in a client library hides it).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from dispatcher import Dispatcher
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import GatewayServer, Socket, StartGateway, token

ID_MAX = 2**63 - 1
ID_RULE = f"id must be an integer from 1 to {ID_MAX}"
SINCE_RULE = f"since must be a notification id (an integer up to {ID_MAX}) or an ISO 8601 timestamp"
TYPE_RULE = "type must be one of: ping, mark_read, resume"
NOT_JSON = "message is not valid JSON"
NOT_OBJECT = "message must be a JSON object"
DETAILS = {ID_RULE, SINCE_RULE, TYPE_RULE, NOT_JSON, NOT_OBJECT}

#: Characters that have broken parsers, drivers and terminals.
NASTY = [
    "\x00",
    "\x1b[2J",
    "\r\n",
    "\u202e",
    "\u2066",
    "\u200b",
    "\ufeff",
    "²",
    "١٢٣",
    "\U0001f4a9",
]
HUGE = [2**63, -(2**63) - 1, 10**30, 10**100, ID_MAX, -(2**63), 0, -1]

hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),  # every code point but surrogates, control characters included
    st.builds(
        lambda c, n: c * n, st.sampled_from(["9", "a", "\x00", "\u202e"]), st.integers(20, 5000)
    ),
)
hostile_int = st.one_of(st.sampled_from(HUGE), st.integers())
hostile_value = st.one_of(
    hostile_int,
    hostile_text,
    st.floats(),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _drain_until_pong(ws: Socket) -> list[dict[str, Any]]:
    """Send a ping; everything the client is answered with before the pong."""
    ws.send({"type": "ping"})
    seen = []
    while (body := ws.recv()) != {"type": "pong"}:
        if body["type"] not in ("unread_count", "notification"):
            seen.append(body)
    return seen


def _ask(ws: Socket, frame: str | bytes) -> list[dict[str, Any]]:
    """Send one frame; the answers to it (the socket must still answer a ping after)."""
    ws.conn.send(frame)
    return _drain_until_pong(ws)


def _bad(detail: str) -> list[dict[str, Any]]:
    return [{"type": "error", "error": "bad_request", "detail": detail}]


def _log_mark(gateway: GatewayServer) -> int:
    return len(gateway.log())


def _clean_log(gateway: GatewayServer, since: int = 0) -> None:
    """No failure in the gateway's log since ``since`` (the shared gateway's log grows)."""
    log = gateway.log()[since:]
    for marker in ("Traceback", "OverflowError", "gateway.socket_failed", "Exception in ASGI"):
        assert marker not in log, log[-3000:]


# -- item 4: big integers and other bad values keep the socket open -------------------


@pytest.mark.parametrize(
    ("message", "answer"),
    [
        ({"type": "mark_read", "id": 2**63}, _bad(ID_RULE)),
        ({"type": "mark_read", "id": 10**30}, _bad(ID_RULE)),
        ({"type": "mark_read", "id": -(2**63) - 1}, _bad(ID_RULE)),
        ({"type": "mark_read", "id": 0}, _bad(ID_RULE)),
        ({"type": "mark_read", "id": True}, _bad(ID_RULE)),
        ({"type": "mark_read", "id": 1.0}, _bad(ID_RULE)),
        ({"type": "mark_read", "id": "5"}, _bad(ID_RULE)),
        ({"type": "mark_read"}, _bad(ID_RULE)),
        # The largest id the database takes is a real lookup on both backends.
        (
            {"type": "mark_read", "id": ID_MAX},
            [{"type": "error", "error": "not_found", "id": ID_MAX}],
        ),
        ({"type": "resume", "since": 2**63}, _bad(SINCE_RULE)),
        ({"type": "resume", "since": 10**30}, _bad(SINCE_RULE)),
        ({"type": "resume", "since": "9" * 20}, _bad(SINCE_RULE)),
        ({"type": "resume", "since": "9223372036854775808"}, _bad(SINCE_RULE)),
        ({"type": "resume", "since": "²"}, _bad(SINCE_RULE)),  # isdigit(), but not int()
        ({"type": "resume", "since": "0001-01-01T00:00:00+05:00"}, _bad(SINCE_RULE)),
        ({"type": "resume", "since": "9999-12-31T23:59:59-05:00"}, _bad(SINCE_RULE)),
        ({"type": "resume", "since": "2026-11-30\x00T10:00"}, _bad(SINCE_RULE)),
        ({"type": "resume", "since": "\u202e2026-11-30"}, _bad(SINCE_RULE)),
        ({"type": "resume", "since": "1" * 65}, _bad(SINCE_RULE)),
        ({"type": "resume", "since": 1.5}, _bad(SINCE_RULE)),
        ({"type": "resume", "since": ID_MAX}, [{"type": "resumed", "count": 0}]),
        ({"type": "resume", "since": str(ID_MAX)}, [{"type": "resumed", "count": 0}]),
        ({"type": "resume", "since": -(2**63)}, [{"type": "resumed", "count": 0}]),
        ({"type": "\x00"}, _bad(TYPE_RULE)),
        ({"type": "ping\u202e"}, _bad(TYPE_RULE)),
        ({}, _bad(TYPE_RULE)),
        ([{"type": "ping"}], _bad(NOT_OBJECT)),
    ],
)
def test_bad_numbers_and_strings_in_socket_messages_get_a_precise_error_on_an_open_socket(
    dispatcher: Dispatcher, gateway: GatewayServer, message: Any, answer: list[dict[str, Any]]
) -> None:
    mark = _log_mark(gateway)
    dispatcher.subscribers.upsert("ana")
    with gateway.socket("ana") as ws:
        ws.recv_type("unread_count")
        assert _ask(ws, json.dumps(message)) == answer
        # And once more on the same socket: nothing was torn down.
        assert _ask(ws, json.dumps(message)) == answer
    _clean_log(gateway, mark)


def test_frames_that_are_not_json_objects_get_bad_request(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    with gateway.socket("ana") as ws:
        ws.recv_type("unread_count")
        assert _ask(ws, "not json") == _bad(NOT_JSON)
        assert _ask(ws, "\x00") == _bad(NOT_JSON)
        assert _ask(ws, '{"type": "mark_read", "id": NaN}') == _bad(ID_RULE)
        assert _ask(ws, b"\xff\xfe") == _bad(NOT_JSON)  # a binary frame, not UTF-8
        assert _ask(ws, b'{"type": "mark_read", "id": 99}') == [
            {"type": "error", "error": "not_found", "id": 99}
        ]
        assert _ask(ws, "42") == _bad(NOT_OBJECT)
        assert _ask(ws, '"\u202e"') == _bad(NOT_OBJECT)


def test_a_message_over_the_size_limit_closes_with_1009(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    # The one case the protocol closes for: the frame is refused before it is read.
    with gateway.socket("ana") as ws:
        ws.recv_type("unread_count")
        ws.send({"type": "resume", "since": "9" * 70_000})
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_rest_answers_422_for_the_same_numbers(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    mark = _log_mark(gateway)
    dispatcher.subscribers.upsert("ana")
    with gateway.client("ana") as http:
        for action in ("", "/read", "/archive"):
            method = http.get if not action else http.post
            huge = method(f"/api/notifications/{2**63}{action}")
            assert huge.status_code == 422, huge.text
            assert huge.json()["detail"][0]["loc"] == ["path", "notification_id"]
            assert method(f"/api/notifications/{ID_MAX}{action}").status_code == 404
            assert method(f"/api/notifications/0{action}").status_code == 422
        cursor = http.get("/api/notifications", params={"cursor": "9" * 19})
        assert cursor.status_code == 422
        assert cursor.json()["detail"][0]["loc"] == ["query", "cursor"]
    _clean_log(gateway, mark)


# -- hostile input, generated ---------------------------------------------------------


_NOT_JSON = object()


def _json(frame: str | bytes) -> Any:
    """The frame parsed as JSON, or ``_NOT_JSON``.

    Python's parser agrees with pydantic's on the edges: UTF-8 only, NaN and Infinity
    taken, integers of more than 4,300 digits refused.
    """
    try:
        text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
        return json.loads(text)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError included
        return _NOT_JSON


def _answer(frame: str | bytes) -> list[dict[str, Any]]:
    """What the gateway must answer to ``frame`` (the protocol's rules, restated)."""
    message = _json(frame)
    if message is _NOT_JSON:
        return _bad(NOT_JSON)
    if not isinstance(message, dict):
        return _bad(NOT_OBJECT)
    kind = message.get("type")
    if kind == "ping":
        return []
    if kind == "mark_read":
        value = message.get("id")
        if type(value) is int and 1 <= value <= ID_MAX:
            return [{"type": "error", "error": "not_found", "id": value}]
        return _bad(ID_RULE)
    if kind == "resume":
        if _since_ok(message.get("since")):
            return [{"type": "resumed", "count": 0}]
        return _bad(SINCE_RULE)
    return _bad(TYPE_RULE)


def _since_ok(since: object) -> bool:
    if since is None:
        return True
    if type(since) is int:
        return -(2**63) <= since <= ID_MAX
    if not isinstance(since, str) or len(since) > 64:
        return False
    if re.fullmatch(r"[0-9]{1,19}", since):
        return int(since) <= ID_MAX
    try:
        moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return False
    return True


messages = st.one_of(
    st.fixed_dictionaries({"type": st.just("mark_read")}, optional={"id": hostile_value}),
    st.fixed_dictionaries({"type": st.just("resume")}, optional={"since": hostile_value}),
    st.fixed_dictionaries({}, optional={"type": hostile_value}),
)


def test_generated_hostile_socket_messages(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    mark = _log_mark(gateway)
    dispatcher.subscribers.upsert("ana")  # no notifications: a valid resume replays none
    with gateway.socket("ana") as ws:
        ws.recv_type("unread_count")

        @given(message=messages)
        @settings(
            max_examples=250, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def objects(message: dict[str, Any]) -> None:
            frame = json.dumps(message)
            assert _ask(ws, frame) == _answer(frame)

        @given(frame=st.one_of(hostile_text, st.binary(max_size=200)))
        @settings(
            max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def frames(frame: str | bytes) -> None:
            assert _ask(ws, frame) == _answer(frame)

        objects()
        frames()
    _clean_log(gateway, mark)


# At most 2,000 repeats: httpx itself refuses a URL component over 64 KiB.
rest_text = st.one_of(
    st.sampled_from([*NASTY, str(2**63), str(10**30), "-1", "0"]),
    st.text(min_size=1, max_size=30),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["9", "a", "\x00", "\u202e"]), st.integers(20, 2000)
    ),
)


def test_generated_hostile_rest_input(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    mark = _log_mark(gateway)
    dispatcher.subscribers.upsert("ana")
    seen: set[int] = set()
    with gateway.client("ana") as http:

        def check(response: Any, allowed: set[int]) -> None:
            seen.add(response.status_code)
            assert response.status_code in allowed, (response.status_code, response.text[:300])
            if response.status_code == 422:
                assert response.json()["detail"][0]["loc"], response.text
            elif response.status_code in (400, 404, 409) and response.request.url.path.startswith(
                "/api/"
            ):
                assert isinstance(response.json()["detail"], str) and response.json()["detail"]

        @given(value=rest_text)
        @settings(
            max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(value: str) -> None:
            # "." and ".." encoded too, or the client would resolve them away.
            segment = quote(value, safe="").replace(".", "%2E")
            # A URL over 8 KiB is refused before routing (414), whatever it asks for;
            # "/" (%2F decodes to a slash) is redirected to the list by the router.
            check(http.get(f"/api/notifications/{segment}"), {307, 404, 414, 422})
            check(
                http.get(
                    "/api/notifications", params={"cursor": value, "type": value, "category": value}
                ),
                {200, 414, 422},
            )
            check(
                http.put(
                    "/api/preferences/rules",
                    json={"type": value, "channel": value, "enabled": True},
                ),
                {200, 400, 422},
            )
            check(
                http.delete("/api/preferences/rules", params={"channel": value}),
                {200, 400, 414, 422},
            )
            check(
                http.post(
                    "/api/push/subscriptions",
                    json={"endpoint": value, "keys": {"p256dh": value, "auth": value}},
                ),
                {400, 422},
            )
            check(
                http.delete("/api/push/subscriptions", params={"endpoint": value}),
                {404, 414, 422},
            )
            check(http.get("/unsubscribe", params={"token": value}), {400, 414, 422})

        run()
    assert {400, 422} <= seen and not any(code >= 500 for code in seen)
    _clean_log(gateway, mark)


# -- item 7: request heads are bounded in size and time ---------------------------------

WS_HEADERS = (
    "Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def _exchange(port: int, payload: bytes, *, within: float = 5.0) -> tuple[bytes, float]:
    """Send ``payload``; what comes back before the server hangs up, and when it did."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(within)
        start = time.monotonic()
        # It may hang up while we are still sending: what we want to see.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(payload)
        received = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                raise AssertionError(
                    f"still open after {within}s; got {received[:200]!r}"
                ) from None
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        return received, time.monotonic() - start


def _read_response(s: socket.socket) -> bytes:
    """One whole response (head and ``Content-Length`` body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *([0-9]+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_an_overlong_socket_path_is_answered_414_and_closed_at_once(
    gateway: GatewayServer,
) -> None:
    path = "/ws/notifications/" + "a" * 10_000 + "/"
    response, took = _exchange(
        gateway.port, f"GET {path} HTTP/1.1\r\n{WS_HEADERS}\r\n".encode(), within=5
    )
    assert _status(response) == 414 and took < 2, (response[:100], took)
    # The same URL without the upgrade, and a URL that never ends.
    response, took = _exchange(gateway.port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert _status(response) == 414 and took < 2
    _, took = _exchange(gateway.port, b"GET /" + b"a" * (4 << 20))
    assert took < 3
    # The gateway still serves.
    response, _ = _exchange(
        gateway.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert _status(response) == 200


def test_handshakes_websockets_refuses_while_parsing_are_answered_and_closed(
    gateway: GatewayServer,
) -> None:
    # A URL under our 8 KiB limit whose request line is over websockets' 8 KiB line limit.
    path = "/ws/notifications/" + "a" * (8185 - len("/ws/notifications/"))
    response, took = _exchange(gateway.port, f"GET {path} HTTP/1.1\r\n{WS_HEADERS}\r\n".encode())
    assert _status(response) == 414 and took < 2, (response[:100], took)
    # One header line over websockets' limit (the head is under ours).
    big = "X-Padding: " + "b" * 9000 + "\r\n"
    response, took = _exchange(
        gateway.port,
        f"GET /ws/notifications/{token('ana')}/ HTTP/1.1\r\n{WS_HEADERS}{big}\r\n".encode(),
    )
    assert _status(response) == 431 and took < 2, (response[:100], took)


def test_an_oversized_request_head_is_answered_431(gateway: GatewayServer) -> None:
    headers = "".join(f"X-H{i}: {'c' * 1000}\r\n" for i in range(40))  # 40 KiB of headers
    response, took = _exchange(
        gateway.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()
    )
    assert _status(response) == 431 and took < 2
    one = "X-One: " + "d" * (1 << 20) + "\r\n"  # one megabyte-long header value
    _, took = _exchange(gateway.port, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{one}\r\n".encode())
    assert took < 3


def test_slow_request_heads_are_cut_at_the_deadline_and_open_sockets_are_not(
    dispatcher: Dispatcher, start_gateway: StartGateway
) -> None:
    g = start_gateway({"DISPATCHER_GATEWAY_REQUEST_HEAD_TIMEOUT_SECONDS": "1"})
    # Nothing at all.
    response, took = _exchange(g.port, b"", within=6)
    assert _status(response) == 408 and 0.9 < took < 3, (response[:100], took)
    # Half a handshake.
    response, took = _exchange(
        g.port, f"GET /ws/notifications/{token('ana')}/ HTTP/1.1\r\nHost: x\r\n".encode(), within=6
    )
    assert _status(response) == 408 and 0.9 < took < 3, (response[:100], took)
    # A byte every 200 ms: the deadline is for the whole head, not for each byte.
    with socket.create_connection(("127.0.0.1", g.port)) as s:
        s.settimeout(0.2)
        start = time.monotonic()
        s.sendall(b"GET /ws/notifications/")
        closed_after = None
        while time.monotonic() - start < 6:
            try:
                if not s.recv(4096):
                    closed_after = time.monotonic() - start
                    break
            except TimeoutError:
                try:
                    s.sendall(b"a")
                except OSError:
                    closed_after = time.monotonic() - start
                    break
            except ConnectionResetError:
                closed_after = time.monotonic() - start
                break
        assert closed_after is not None and closed_after < 3, closed_after

    # A keep-alive connection idle between requests is not cut by the head deadline
    # (uvicorn's keep-alive timeout, 5 s, governs that).
    with socket.create_connection(("127.0.0.1", g.port)) as s:
        s.settimeout(5)
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(2):
            s.sendall(request)
            assert _status(_read_response(s)) == 200
            time.sleep(1.5)

    # An open socket outlives the deadline: it only bounds the handshake.
    dispatcher.subscribers.upsert("ana")
    with g.socket("ana") as ws:
        ws.recv_type("unread_count")
        time.sleep(1.5)
        assert _drain_until_pong(ws) == []
