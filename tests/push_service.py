"""A local push service that behaves like a real one (RFC 8030 / 8291 / 8292).

It runs an aiohttp server on 127.0.0.1 in a thread (or, for the benchmark, in its own
process with ``python -m tests.push_service``). For every push it:

1. answers 404 for an endpoint it never issued;
2. verifies the VAPID JWT: ES256 signature against the ``k`` public key (and the one the
   test expects), ``aud`` equal to its own origin as the client addressed it, ``exp`` in
   the future and at most 24 hours ahead, ``sub`` a ``mailto:`` or ``https:`` contact;
   a bad token gets 403, like FCM and autopush;
3. checks ``TTL`` and ``Content-Encoding: aes128gcm`` (400 otherwise), body <= 4096 (413);
4. answers whatever the test told it to (404, 410, 429 with Retry-After, 500, 413, or
   silence), per device or to every push, or a scripted run of faults in order
   (:meth:`PushService.fault_plan`: say 30 answers of 500, then 30 of 429);
5. decrypts the body with the device's private key and auth secret, exactly as the
   browser would, and records the plaintext and headers.

Devices are real browser-like subscriptions: a P-256 key pair and 16 random bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from multidict import CIMultiDict


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """One browser's subscription: what ``PushSubscription.toJSON()`` would give."""

    token: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    endpoint: str

    @classmethod
    def new(cls, base_url: str) -> Device:
        token = secrets.token_urlsafe(16)
        return cls(
            token, ec.generate_private_key(ec.SECP256R1()), os.urandom(16), f"{base_url}/{token}"
        )

    @property
    def p256dh(self) -> str:
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64e(raw)

    def subscription(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64e(self.auth)},
        }

    def to_record(self) -> dict[str, str]:
        scalar = self.private_key.private_numbers().private_value.to_bytes(32, "big")
        return {"token": self.token, "key": b64e(scalar), "auth": b64e(self.auth)}

    @classmethod
    def from_record(cls, record: dict[str, str], base_url: str) -> Device:
        key = ec.derive_private_key(int.from_bytes(b64d(record["key"]), "big"), ec.SECP256R1())
        token = record["token"]
        return cls(token, key, b64d(record["auth"]), f"{base_url}/{token}")


@dataclass
class Received:
    """One push the service accepted and the browser decrypted."""

    token: str
    #: Case-insensitive, as HTTP headers are (pywebpush sends them lower-case).
    headers: CIMultiDict[str]
    plaintext: bytes
    claims: dict[str, Any]

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.plaintext))


@dataclass
class Answer:
    status: int
    retry_after: str | None = None
    body: str = ""
    #: How many more requests get this answer; None means every one.
    times: int | None = None


@dataclass
class Attempt:
    """One push request that reached the scripted answers, and what it got."""

    token: str
    at: float
    status: int
    retry_after: str | None = None


@dataclass
class Rejection:
    token: str
    status: int
    reason: str


@dataclass
class PushService:
    """The server and what it saw. Start with :meth:`start`; read ``received``."""

    expected_vapid_key: str | None = None
    #: Decrypt one push in this many (the benchmark keeps the server off the hot path).
    decrypt_every: int = 1
    devices: dict[str, Device] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    answers: dict[str | None, Answer] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    #: Answers given to every push in order, one request each, before ``answers``.
    faults: list[Answer] = field(default_factory=list)
    #: Every push that passed the checks: token, ``time.monotonic()``, status answered.
    attempts: list[Attempt] = field(default_factory=list)
    accepted: int = 0
    requests: int = 0
    #: The most pushes in progress at once (proves the client sends concurrently).
    max_in_flight: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._verified: dict[str, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self._in_flight = 0

    # -- configuration --------------------------------------------------------------

    def base_url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/push"

    def new_device(self, host: str = "127.0.0.1") -> Device:
        device = Device.new(self.base_url(host))
        self.devices[device.token] = device
        return device

    def answer(
        self,
        status: int,
        *,
        device: Device | None = None,
        retry_after: str | None = None,
        body: str = "",
        times: int | None = None,
    ) -> None:
        """Answer ``status`` to pushes for ``device`` (or to every push)."""
        with self._lock:
            self.answers[device.token if device else None] = Answer(
                status, retry_after, body, times
            )

    def fault_plan(self, *steps: tuple[int, int, str | None]) -> None:
        """Answer the next pushes, whichever device, with ``(status, count, retry_after)``
        steps in order (e.g. ``(500, 30, None), (429, 30, "2")``); then as before."""
        with self._lock:
            self.faults = [
                Answer(status, retry_after, f"fault {status}")
                for status, count, retry_after in steps
                for _ in range(count)
            ]

    def go_silent(self, device: Device) -> None:
        """Accept pushes for ``device`` but never answer (until :meth:`reset`)."""
        self.silent.add(device.token)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.rejected.clear()
            self.answers.clear()
            self.silent.clear()
            self.faults.clear()
            self.attempts.clear()
            self.accepted = self.requests = self.max_in_flight = 0
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._renew_release)

    def _renew_release(self) -> None:
        # Wake handlers held silent, and hold later ones again.
        if self._release is not None:
            self._release.set()
        self._release = asyncio.Event()

    def for_device(self, device: Device) -> list[Received]:
        return [r for r in self.received if r.token == device.token]

    # -- the HTTP side --------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/push/{token}", self._push)
        app.router.add_get("/_stats", self._stats)
        return app

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests,
                "accepted": self.accepted,
                "decrypted": len(self.received),
                "rejected": [r.__dict__ for r in self.rejected[:20]],
                "rejected_count": len(self.rejected),
                "last": self.received[-1].json if self.received else None,
                "max_in_flight": self.max_in_flight,
            }
        )

    def _reject(self, token: str, status: int, reason: str) -> web.Response:
        with self._lock:
            self.rejected.append(Rejection(token, status, reason))
        return web.Response(status=status, text=reason)

    async def _push(self, request: web.Request) -> web.Response:
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            # Let requests that arrived together overlap, as on a real network.
            await asyncio.sleep(0)
            return await self._handle(request)
        finally:
            self._in_flight -= 1

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        body = await request.read()
        self.requests += 1
        device = self.devices.get(token)
        if device is None:
            return self._reject(token, 404, "no such subscription")
        origin = f"{request.scheme}://{request.host}"
        try:
            claims = self._verify_vapid(request.headers.get("Authorization", ""), origin)
        except ValueError as exc:
            return self._reject(token, 403, f"VAPID: {exc}")
        ttl = request.headers.get("TTL")
        if ttl is None or not ttl.isdigit():
            return self._reject(token, 400, "TTL header missing or not a number")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return self._reject(token, 400, "Content-Encoding must be aes128gcm")
        if len(body) > 4096:
            return self._reject(token, 413, f"body of {len(body)} bytes exceeds 4096")
        if token in self.silent:
            assert self._release is not None
            await self._release.wait()
            return web.Response(status=503)
        scripted = self._scripted(token)
        if scripted is not None:
            with self._lock:
                self.attempts.append(
                    Attempt(token, time.monotonic(), scripted.status, scripted.retry_after)
                )
            headers = {"Retry-After": scripted.retry_after} if scripted.retry_after else {}
            return web.Response(status=scripted.status, text=scripted.body, headers=headers)
        with self._lock:
            self.attempts.append(Attempt(token, time.monotonic(), 201))
            self.accepted += 1
            decrypt = self.accepted % self.decrypt_every == 0 or self.decrypt_every == 1
        if decrypt:
            try:
                plaintext = http_ece.decrypt(
                    body,
                    private_key=device.private_key,
                    auth_secret=device.auth,
                    version="aes128gcm",
                )
            except Exception as exc:  # what a browser does with a bad body: drop it
                return self._reject(token, 400, f"cannot decrypt: {type(exc).__name__}")
            with self._lock:
                self.received.append(
                    Received(token, CIMultiDict(request.headers), plaintext, claims)
                )
        return web.Response(status=201, headers={"Location": f"/m/{secrets.token_hex(8)}"})

    def _scripted(self, token: str) -> Answer | None:
        with self._lock:
            if token in self.answers:
                pass  # a device's own answer (410 for a gone one) comes first
            elif self.faults:
                return self.faults.pop(0)
            for key in (token, None):
                answer = self.answers.get(key)
                if answer is None:
                    continue
                if answer.times is not None:
                    answer.times -= 1
                    if answer.times <= 0:
                        del self.answers[key]
                return answer
        return None

    def _verify_vapid(self, header: str, origin: str) -> dict[str, Any]:
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError(f"Authorization scheme {scheme!r} is not vapid")
        parts = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        token, key = parts.get("t"), parts.get("k")
        if not token or not key:
            raise ValueError("Authorization lacks t= or k=")
        if self.expected_vapid_key and key.rstrip("=") != self.expected_vapid_key.rstrip("="):
            raise ValueError("k is not the application server key the device subscribed with")
        claims = self._verified.get(token)
        if claims is None:
            claims = verify_jwt(token, key)
            self._verified[token] = claims
        if claims.get("aud") != origin:
            raise ValueError(f"aud {claims.get('aud')!r} is not {origin!r}")
        exp = claims.get("exp")
        now = time.time()
        if not isinstance(exp, int) or exp <= now:
            raise ValueError("exp missing or in the past")
        if exp > now + 24 * 3600:
            raise ValueError("exp more than 24 hours ahead")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
            raise ValueError("sub missing or not mailto:/https:")
        return claims

    # -- running --------------------------------------------------------------------

    def start(self) -> PushService:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._release = asyncio.Event()
            self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.SockSite(self._runner, sock).start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="push-service", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def verify_jwt(token: str, public_key_b64: str) -> dict[str, Any]:
    """Verify an ES256 JWT the way a push service does; return its claims."""
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(b64d(header_b64))
        signature = b64d(signature_b64)
        public_key = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b64d(public_key_b64)
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed token: {exc}") from None
    if header.get("alg") != "ES256":
        raise ValueError(f"alg {header.get('alg')!r} is not ES256")
    if len(signature) != 64:
        raise ValueError("ES256 signature must be 64 bytes (r || s)")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public_key.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("bad signature") from None
    return dict(json.loads(b64d(claims_b64)))


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.push_service --devices FILE``: serve until stdin closes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", required=True, help="JSON list of Device.to_record()")
    parser.add_argument("--vapid-key", default=None)
    parser.add_argument("--decrypt-every", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    service = PushService(args.vapid_key, decrypt_every=args.decrypt_every).start()
    with open(args.devices) as handle:
        for record in json.load(handle):
            device = Device.from_record(record, service.base_url())
            service.devices[device.token] = device
    print(service.port, flush=True)
    sys.stdin.read()
    service.stop()


if __name__ == "__main__":
    main()
