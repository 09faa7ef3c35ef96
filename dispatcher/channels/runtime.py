"""Channel instances and the event loop they run on, one set per worker process.

Async clients (aiosmtplib, aiohttp, redis.asyncio) bind connections to the loop that
opened them, so each process keeps one loop for its whole life and every batch runs
on it. Create a :class:`ChannelRuntime` after fork, never before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from dispatcher import log
from dispatcher.channels.base import Channel, ChannelContext
from dispatcher.channels.registry import ChannelRegistry
from dispatcher.errors import MissingExtraError

_T = TypeVar("_T")


class ChannelRuntime:
    """Lazily creates the registered channels and runs their coroutines."""

    def __init__(self, context: ChannelContext, registry: ChannelRegistry | None = None) -> None:
        self.context = context
        #: The channels this process may create, by name.
        self.registry = registry or ChannelRegistry()
        self._channels: dict[str, Channel] = {}
        self._opened: set[str] = set()
        self._unavailable: set[str] = set()
        self._runner: asyncio.Runner | None = None

    def get(self, name: str) -> Channel | None:
        """The channel called ``name``, or None if no such channel is registered or its
        extra is not installed (its deliveries are then skipped as not configured, as
        a plain ``pip install dispatcher`` worker does with web push)."""
        if name not in self.registry or name in self._unavailable:
            return None
        channel = self._channels.get(name)
        if channel is None:
            try:
                cls = self.registry.get(name)
            except MissingExtraError as exc:
                log.warning("channel.unavailable", channel=name, extra=exc.extra)
                self._unavailable.add(name)
                return None
            channel = self._channels[name] = cls(self.context)
        return channel

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(coro)

    def open(self, channel: Channel) -> None:
        if channel.name not in self._opened:
            self.run(channel.open())
            self._opened.add(channel.name)

    def close(self) -> None:
        """Close every opened channel and the loop."""
        for name in list(self._opened):
            try:
                self.run(self._channels[name].close())
            except Exception as exc:  # closing must not stop the others from closing
                log.warning("channel.close_failed", channel=name, error=type(exc).__name__)
        self._opened.clear()
        if self._runner is not None:
            self._runner.close()
            self._runner = None
