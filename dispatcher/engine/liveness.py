"""Liveness: which processes holding claims are still running.

Every claim names the process that holds it (``claimed_by``, ``host:pid``). That
process keeps a Redis key with a short expiry alive from a background thread; when
the process dies (SIGKILL, a lost machine), its key expires within
``DISPATCHER_LIVENESS_SECONDS`` and the sweep takes its claims back at once instead of
waiting out their lease. A key that vanished for another reason (a flushed or
restarted Redis) can make the sweep take back the claims of a live process; its
fenced writes are then refused, and it stops sending that batch at its next renewal
(see :mod:`dispatcher.engine.claim`), so the cost is at most the group in flight.
When Redis cannot be asked, nobody counts as gone: leases still expire.

A live process can also abandon claims: a batch that fails half-way (the database went
away between two groups) leaves its rows ``sending`` with nobody working on them. The
process then *retires* its name (:meth:`Liveness.retire`): its key is deleted, later
claims carry a new name (``host:pid/2``), and the sweep takes the abandoned rows back
as soon as it can read the database again, instead of at the end of their lease.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Collection

import redis

from dispatcher import log, names
from dispatcher.engine.claim import process_name


class Liveness:
    """This process's liveness key, and the question "which of these processes are gone?"."""

    def __init__(self, redis_url: str, prefix: str, *, seconds: float = 10.0) -> None:
        self._redis_url = redis_url
        self._prefix = prefix
        self.seconds = seconds
        self._client: redis.Redis | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # Held while the name changes or a key is set, so the background thread never
        # sets a retired name's key again after retire() deleted it.
        self._naming = threading.Lock()
        self._pid = 0
        self._owner = ""
        self._generation = 1
        self._last = 0.0
        self._failing = False
        self._asked_turn = 0.0

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            timeout = max(0.2, min(2.0, self.seconds / 5))
            self._client = redis.Redis.from_url(
                self._redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        return self._client

    @property
    def owner(self) -> str:
        """This process as ``claimed_by`` records it."""
        if self._pid != os.getpid():
            self._pid, self._owner, self._generation = os.getpid(), process_name(), 1
            # A forked child inherits neither the thread nor safe sockets.
            self._thread, self._client, self._last = None, None, 0.0
        return self._owner

    def retire(self, owner: str) -> None:
        """Give up every claim made under ``owner`` (this process's current name): the
        next claims are made under a new name, and ``owner``'s key is deleted now (or,
        with Redis away, simply no longer renewed: it expires), so the sweep counts
        those claims as a dead process's. A claim still being worked on under the old
        name is then fenced out at its next write."""
        with self._naming:
            if owner != self.owner:
                return  # retired already (a second failing batch of the same name)
            self._generation += 1
            self._owner = f"{process_name()}/{self._generation}"[:255]
            self._last = 0.0
            if not self._failing:
                with contextlib.suppress(redis.RedisError):
                    self.client.delete(self.key(owner))
        log.warning("liveness.retired", process=owner, now=self._owner)

    def key(self, owner: str) -> str:
        return names.worker_alive(self._prefix, owner)

    def beat(self) -> str:
        """Make sure this process's key is alive and kept alive; return its name.

        Called before every claim: a claim is never written for a process whose key
        was never set.
        """
        owner = self.owner
        # While Redis is away, only the thread keeps trying: a claim must not wait on it.
        if not self._failing and time.monotonic() - self._last > self.seconds / 3:
            self._refresh(owner)
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._keep, name="dispatcher-liveness", daemon=True
            )
            self._thread.start()
        return owner

    def _refresh(self, owner: str) -> None:
        try:
            with self._naming:
                if owner != self._owner:
                    return  # retired meanwhile: its key must stay deleted
                self.client.set(self.key(owner), "1", px=int(self.seconds * 1000))
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("liveness.failed", process=owner, error=type(exc).__name__)
            self._failing = True
            return
        if self._failing:
            log.info("liveness.restored", process=owner)
        self._failing = False
        self._last = time.monotonic()

    def _keep(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            if os.getpid() != self._pid:
                return
            self._refresh(self._owner)  # the current name: a retired one is let expire

    def my_turn(self) -> bool:
        """Whether this process should look for gone processes' claims now: true for
        one process of the whole deployment every ``seconds / 2`` (a Redis key taken
        with ``SET NX``), asked of Redis at most that often by each process."""
        now = time.monotonic()
        if self._failing or now - self._asked_turn < self.seconds / 2:
            return False
        self._asked_turn = now
        try:
            key = names.take_back_turn(self._prefix)
            return bool(self.client.set(key, self.owner, nx=True, px=int(self.seconds * 500)))
        except redis.RedisError:
            return False

    def gone(self, owners: Collection[str]) -> set[str]:
        """Those of ``owners`` whose key has expired; none if Redis cannot say."""
        owners = [o for o in owners if o]
        if not owners:
            return set()
        try:
            pipe = self.client.pipeline(transaction=False)
            for owner in owners:
                pipe.exists(self.key(owner))
            alive = pipe.execute()
        except redis.RedisError as exc:
            log.warning("liveness.unknown", processes=len(owners), error=type(exc).__name__)
            return set()
        return {o for o, found in zip(owners, alive, strict=True) if not found}

    def close(self) -> None:
        """Stop keeping the key alive and delete it (its claims are finished or
        abandoned: either way the sweep may have them)."""
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=2)
        self._thread = None
        if self._client is not None:
            if self._owner and self._pid == os.getpid():
                with contextlib.suppress(redis.RedisError):
                    self._client.delete(self.key(self._owner))
            self._client.close()
            self._client = None
        self._last = 0.0
