"""A real gateway (``dispatcher gateway`` under uvicorn) in a subprocess, and clients for it.

Import the fixtures into a test module with ``from tests.gateway_server import *``
(``__all__`` lists only the fixtures), and the helpers by name.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from websockets.sync.client import ClientConnection, connect

from dispatcher import Dispatcher, Settings
from tests.conftest import ROOT, settings_env, wait_for

__all__ = ["_gateways", "gateway", "start_gateway"]

SECRET = "gateway-test-secret-" + uuid.uuid4().hex
#: Generous defaults so that ordinary tests never meet a limit by accident.
DEFAULT_ENV = {
    "DISPATCHER_GATEWAY_JWT_SECRET": SECRET,
    "DISPATCHER_GATEWAY_REQUESTS_PER_MINUTE": "100000",
    "DISPATCHER_GATEWAY_MAX_CONNECTIONS_PER_SUBSCRIBER": "50",
    "DISPATCHER_GATEWAY_HEARTBEAT_SECONDS": "5",
}


def token(sub: str, *, ttl: float = 300, secret: str = SECRET, **claims: Any) -> str:
    """An HS256 token for subscriber ``sub`` expiring in ``ttl`` seconds."""
    body = {"sub": sub, "exp": int(time.time() + ttl), **claims}
    return jwt.encode(body, secret, algorithm="HS256")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayServer:
    """``dispatcher gateway`` on a free loopback port."""

    def __init__(self, settings: Settings, log_path: Path, extra_env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, **settings_env(settings), **DEFAULT_ENV, **extra_env}
        env["PYTHONPATH"] = str(ROOT)
        self.log_file = log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from dispatcher.cli import main; main()",
                "gateway",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, timeout=30)

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"gateway exited early:\n{self.log()}")
        try:
            return httpx.get(self.url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, sub: str | None = None, **token_args: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token(sub, **token_args)}"} if sub else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def socket(self, sub: str, **token_args: Any) -> Socket:
        return Socket(connect(f"{self.ws_url}/ws/notifications/{token(sub, **token_args)}/"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


class Socket:
    """A WebSocket client that skips heartbeats and reads JSON."""

    def __init__(self, conn: ClientConnection) -> None:
        # Entering marks the connection as used the supported way (no DeprecationWarning).
        self.conn = conn.__enter__()

    def send(self, body: dict[str, Any]) -> None:
        self.conn.send(json.dumps(body))

    def recv(self, timeout: float = 10) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message")
            body: dict[str, Any] = json.loads(self.conn.recv(timeout=left))
            if body.get("type") != "heartbeat":
                return body

    def recv_type(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        """The next message of type ``kind``, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.recv(max(0.01, deadline - time.monotonic()))
            if body.get("type") == kind:
                return body

    def count_until(self, expected: int, timeout: float = 10) -> int:
        """Read unread counts until ``expected`` shows up."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.recv_type("unread_count", max(0.01, deadline - time.monotonic()))
            if body["count"] == expected:
                return expected

    def quiet(self, seconds: float = 0.5) -> list[dict[str, Any]]:
        """Everything (but heartbeats) that arrives within ``seconds``."""
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.recv(left))
            except TimeoutError:
                break
        return out

    def close(self) -> None:
        self.conn.__exit__(None, None, None)

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


StartGateway = Callable[..., GatewayServer]


@pytest.fixture(scope="session")
def _gateways() -> Iterator[dict[tuple[str, str, frozenset[tuple[str, str]], int], GatewayServer]]:
    started: dict[tuple[str, str, frozenset[tuple[str, str]], int], GatewayServer] = {}
    yield started
    for g in started.values():
        g.stop()


@pytest.fixture
def start_gateway(
    request: pytest.FixtureRequest,
    backend: str,
    dispatcher: Dispatcher,
    _gateways: dict[tuple[str, str, frozenset[tuple[str, str]], int], GatewayServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> StartGateway:
    """Start a gateway for this backend with extra environment variables.

    The default one (no extra variables, ``instance`` 0) is kept for the session; the
    others (special limits, a second process side by side) stop when the test ends, so
    that a test run does not hold a dozen idle servers. ``instance`` tells apart
    several gateways with the same settings.
    """

    def start(extra_env: dict[str, str] | None = None, instance: int = 0) -> GatewayServer:
        # The broker is part of the key: a test without a worker rings a quiet broker,
        # and a gateway it started must not be handed to a test whose worker listens.
        broker = dispatcher.settings.broker_url
        key = (backend, broker, frozenset((extra_env or {}).items()), instance)
        shared = not extra_env and instance == 0
        current = _gateways.get(key)
        if shared and current is not None and current.process.poll() is None:
            return current
        log_path = tmp_path_factory.mktemp("gateway") / f"{backend}-{instance}.log"
        g = GatewayServer(dispatcher.settings, log_path, dict(extra_env or {}))
        if shared:
            _gateways[key] = g
        else:
            request.addfinalizer(g.stop)
        return g

    return start


@pytest.fixture
def gateway(start_gateway: StartGateway) -> GatewayServer:
    """A gateway on the same database and Redis as ``dispatcher``, generous limits."""
    return start_gateway()


def deliver(d: Dispatcher, sub: str, count: int = 1, *, start: int = 1) -> list[int]:
    """Notify ``sub`` ``count`` times through the worker; the new notification ids."""
    before = {i.id for i in d.inbox(sub, limit=1000, archived=None)}
    for n in range(start, start + count):
        d.notify("payout_sent", to=sub, data={"payout_id": n, "amount": f"{n}.00"})
    items = wait_for(
        lambda: (
            new
            if len(
                new := [i for i in d.inbox(sub, limit=1000, archived=None) if i.id not in before]
            )
            >= count
            else None
        )
    )
    return sorted(i.id for i in items)
