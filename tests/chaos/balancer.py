"""Several gateways behind one address: a round-robin TCP balancer on loopback, as an
L4 load balancer (HAProxy ``mode tcp``, an AWS NLB) would put them. A backend that
refuses the connection is skipped, so after a gateway dies its clients' reconnects
land on the ones still alive. Runs its own event loop in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections import Counter


class Balancer:
    """Listen on ``127.0.0.1:port``; hand each connection to the next live backend."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        #: Connections open right now, per backend port.
        self.open: Counter[int] = Counter()
        #: Connections ever made, per backend port.
        self.total: Counter[int] = Counter()
        self._next = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="balancer", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(10)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, sock=self._sock, backlog=2048)
        )
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())
        self._loop.close()

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue  # that gateway is gone: the next one
            return port, reader, writer
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = await self._connect()
        if backend is None:
            writer.close()
            return
        port, up_reader, up_writer = backend
        self.open[port] += 1
        self.total[port] += 1
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.open[port] -= 1
            for w in (writer, up_writer):
                with contextlib.suppress(OSError, RuntimeError):
                    w.close()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until either side closes; then close the other side (a dead backend's
    connections are cut, as the balancer would)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
