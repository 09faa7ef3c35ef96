"""Which channels a dispatcher knows, by name, and how their classes are found.

The built-in channels are one line each in :data:`BUILTIN`. A package adds a channel
with an entry point in the ``dispatcher.channels`` group (``sms =
"my_app.sms:SmsChannel"``), which every dispatcher and worker built with the default
channels picks up; an app can also pass its own mapping to ``Dispatcher(channels=...)``.
Classes named by a ``"module:Class"`` string are imported on first use, so a channel's
optional dependencies load only where the channel is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from dispatcher.errors import ConfigurationError, MissingExtraError
from dispatcher.extras import extra_for

if TYPE_CHECKING:
    from dispatcher.channels.base import Channel

#: Entry-point group through which installed packages add channels.
ENTRY_POINT_GROUP = "dispatcher.channels"

#: Channel name → "module:Class". The order is the order channels are shown in.
BUILTIN: dict[str, str] = {
    "in_app": "dispatcher.channels.in_app:InAppChannel",
    "web_push": "dispatcher.channels.web_push.channel:WebPushChannel",
    "email": "dispatcher.channels.email.channel:EmailChannel",
}


def default_channels() -> dict[str, type[Channel] | str]:
    """The built-in channels, then those installed packages register as entry points."""
    channels: dict[str, type[Channel] | str] = dict(BUILTIN)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        channels.setdefault(point.name, point.value)
    return channels


class ChannelRegistry:
    """Channel classes by name, imported lazily.

    Parameters:
        channels: Name → class or ``"module:Class"``; :func:`default_channels` if None.
    """

    def __init__(self, channels: Mapping[str, type[Channel] | str] | None = None) -> None:
        self._refs = dict(default_channels() if channels is None else channels)
        self._classes: dict[str, type[Channel]] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._refs

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    @property
    def names(self) -> list[str]:
        """Every registered channel name, in registration order."""
        return list(self._refs)

    def get(self, name: str) -> type[Channel]:
        """The class registered as ``name``.

        Raises:
            ConfigurationError: no such channel, or its module (or a dependency of it)
                cannot be imported, or it names something that is not a channel for
                ``name``.
        """
        cls = self._classes.get(name)
        if cls is not None:
            return cls
        try:
            ref = self._refs[name]
        except KeyError:
            raise ConfigurationError(
                f"unknown channel {name!r}; known channels: {', '.join(self._refs)}"
            ) from None
        cls = _load(name, ref) if isinstance(ref, str) else ref
        if getattr(cls, "name", None) != name:
            raise ConfigurationError(
                f"channel {name!r} is registered as {ref!r}, whose name is "
                f"{getattr(cls, 'name', None)!r}"
            )
        self._classes[name] = cls
        return cls


def _load(name: str, ref: str) -> type[Channel]:
    module_name, _, class_name = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra = extra_for(exc.name)
        if extra is not None:
            raise MissingExtraError(extra, f"the {name} channel", exc.name or "") from exc
        raise ConfigurationError(
            f"channel {name!r} ({ref}) cannot be imported: {exc}; if it is a missing "
            "dependency, install it (pip install 'dispatcher[all]')"
        ) from exc
    try:
        cls: type[Channel] = getattr(module, class_name)
    except AttributeError:
        raise ConfigurationError(f"channel {name!r}: {module_name} has no {class_name}") from None
    return cls
