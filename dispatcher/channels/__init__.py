"""Delivery channels, one module each, registered by name.

Adding a channel means adding one module with a :class:`Channel` subclass and one line
in :data:`REGISTRY`. Optional dependencies are imported only when the channel is used.
"""

from __future__ import annotations

import importlib

from dispatcher.channels.base import (
    Channel,
    ChannelContext,
    Message,
    Outcome,
    Recipient,
    RetryPolicy,
)
from dispatcher.errors import ConfigurationError

#: Channel name → "module:Class". The order is the order channels are shown in.
REGISTRY: dict[str, str] = {
    "in_app": "dispatcher.channels.in_app:InAppChannel",
    "web_push": "dispatcher.channels.web_push.channel:WebPushChannel",
    "email": "dispatcher.channels.email.channel:EmailChannel",
}


def channel_class(name: str) -> type[Channel]:
    """Import and return the channel class registered as ``name``."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise ConfigurationError(
            f"unknown channel {name!r}; known channels: {', '.join(REGISTRY)}"
        ) from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigurationError(
            f"channel {name!r} needs a missing dependency ({exc.name}); "
            "install it with: pip install 'dispatcher[all]'"
        ) from exc
    cls: type[Channel] = getattr(module, class_name)
    return cls


__all__ = [
    "REGISTRY",
    "Channel",
    "ChannelContext",
    "Message",
    "Outcome",
    "Recipient",
    "RetryPolicy",
    "channel_class",
]
