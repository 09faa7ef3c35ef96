"""Delivery channels: one module (or package) each, found through a registry.

* :mod:`~dispatcher.channels.base`: the contract (:class:`Channel`, :class:`Message`,
  :class:`Outcome`).
* :mod:`~dispatcher.channels.registry`: names → classes; built-ins, entry points, and
  what an app passes to ``Dispatcher(channels=...)``.
* :mod:`~dispatcher.channels.runtime`: channel instances and the event loop they share
  in one process.
* :mod:`~dispatcher.channels.in_app`, :mod:`~dispatcher.channels.web_push`,
  :mod:`~dispatcher.channels.email`: the built-in channels.
* :mod:`~dispatcher.channels.memory`: :class:`MemoryChannel`, which keeps what it is
  given, for apps' own tests.

Adding a channel is one module with a :class:`Channel` subclass plus one line: in
:data:`~dispatcher.channels.registry.BUILTIN` for ours, an entry point or the
``channels=`` mapping for an app's.
"""

from __future__ import annotations

from dispatcher.channels.base import Channel, ChannelContext, Message, Outcome, RetryPolicy
from dispatcher.channels.registry import ChannelRegistry, default_channels

__all__ = [
    "Channel",
    "ChannelContext",
    "ChannelRegistry",
    "Message",
    "Outcome",
    "RetryPolicy",
    "default_channels",
]
