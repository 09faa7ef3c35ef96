"""Many WebSocket clients that behave like the frontend: each keeps its socket open,
remembers the last notification id it saw, and when the socket drops it reconnects
(with a little jitter) and sends ``resume`` from that id. They run on their own event
loop in a thread so the test can notify and kill processes meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, WebSocketException


@dataclass
class Client:
    """What one client saw."""

    subscriber: str
    received: Counter[int] = field(default_factory=Counter)
    last: int = 0
    connects: int = 0
    resumes: int = 0
    resumed: int = 0  # notifications the gateway sent back in answer to a resume
    connected: bool = False

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.received.values())


class Crowd:
    """``len(subscribers)`` clients on ``url_for(subscriber)``; :meth:`stop` ends them."""

    def __init__(self, subscribers: list[str], url_for: Callable[[str], str]) -> None:
        self.clients = [Client(s) for s in subscribers]
        self._url_for = url_for
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="ws-crowd", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        tasks = [self._loop.create_task(self._keep(c)) for c in self.clients]
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    @property
    def connected(self) -> int:
        return sum(c.connected for c in self.clients)

    def missing(self, expected: Callable[[str], set[int]]) -> int:
        """How many expected notifications the clients have not seen yet."""
        return sum(len(expected(c.subscriber) - set(c.received)) for c in self.clients)

    async def _keep(self, client: Client) -> None:
        assert self._stop is not None
        # Spread the first connects a little, as page loads would be.
        await asyncio.sleep(random.uniform(0, 1.0))
        while not self._stop.is_set():
            try:
                async with connect(
                    self._url_for(client.subscriber), open_timeout=60, ping_interval=None
                ) as ws:
                    client.connects += 1
                    if client.connects > 1:
                        # Every reconnect resumes, also one that had seen nothing yet
                        # (from 0: everything): a socket that dropped before the first
                        # notification would otherwise miss it for good.
                        client.resumes += 1
                        await ws.send(json.dumps({"type": "resume", "since": client.last}))
                    await self._read(client, ws)
            except (OSError, TimeoutError, InvalidHandshake, WebSocketException):
                pass
            finally:
                client.connected = False
            if not self._stop.is_set():
                await asyncio.sleep(random.uniform(0.2, 1.5))  # reconnect jitter

    async def _read(self, client: Client, ws: object) -> None:
        assert self._stop is not None
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            while True:
                recv = asyncio.ensure_future(ws.recv())  # type: ignore[attr-defined]
                done, _ = await asyncio.wait({recv, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    recv.cancel()
                    return
                body = json.loads(recv.result())
                kind = body.get("type")
                if kind == "unread_count":
                    # The gateway sends the count once the socket is registered for live
                    # messages: only from then on is a notification sure to reach it.
                    client.connected = True
                if kind == "notification":
                    nid = int(body["notification"]["id"])
                    client.received[nid] += 1
                    client.last = max(client.last, nid)
                elif kind == "resumed":
                    client.resumed += int(body["count"])
                elif kind == "resync" and client.last:
                    await ws.send(json.dumps({"type": "resume", "since": client.last}))  # type: ignore[attr-defined]
        finally:
            stop.cancel()

    def stop(self) -> None:
        def _set() -> None:
            assert self._stop is not None
            self._stop.set()

        with contextlib.suppress(RuntimeError):  # the loop already ended
            self._loop.call_soon_threadsafe(_set)
        self._thread.join(30)
