"""Rendering a campaign's content once per (template, locale, data), not per recipient.

A campaign run sends one event's data to everyone, so a template that reads nothing of
the recipient renders the same text for all who share a locale. Jinja2's
``meta.find_undeclared_variables`` tells which names a template reads:

- nothing per recipient: rendered once, shared as is;
- only what the channel adds per recipient (``links`` for email: every campaign email
  carries its reader's own unsubscribe link): rendered once with a slot in place of each
  such value, and each recipient's values filled into the slots (HTML-escaped in HTML
  parts, as autoescaping would). The first recipient of each (template, locale) is also
  rendered in full, and the template falls back to per recipient for good if the two
  differ (a filter applied to a link, say);
- ``recipient``, ``notification``, or other templates pulled in (``extends``/``include``,
  whose reads we do not follow): rendered per recipient as usual.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import jinja2
from jinja2 import meta
from markupsafe import escape

from dispatcher.channels.base import Channel
from dispatcher.engine.compose import Composer, Row
from dispatcher.templating.renderer import HTML_PARTS, Renderer

#: Context names that differ from one recipient to the next.
PER_RECIPIENT = frozenset({"recipient", "notification"})


class Sharing(Enum):
    """How far a (template, channel, locale)'s render can be shared across recipients."""

    #: Reads nothing per recipient.
    SHARED = "shared"
    #: Reads only values the channel adds per recipient: render once, fill slots.
    SLOTS = "slots"
    PER_RECIPIENT = "per_recipient"


def names_read(renderer: Renderer, name: str, part: str) -> frozenset[str] | None:
    """The context names template ``name`` (for ``part``) reads, or None when that
    cannot be known (it pulls in other templates, or does not parse)."""
    env = renderer.env_for(part)
    renderer.sync()
    loader = env.loader
    if loader is None:
        return None
    try:
        source, _, _ = loader.get_source(env, name)
        parsed = env.parse(source)
    except jinja2.TemplateError:
        return None  # the render reports it
    if any(True for _ in meta.find_referenced_templates(parsed)):
        return None
    return frozenset(meta.find_undeclared_variables(parsed))


@dataclass(frozen=True)
class Slotted:
    """A render with a slot for each per-recipient string the channel adds."""

    content: dict[str, str]
    #: Each slot's marker, and the path to its value (``("links", "unsubscribe")``).
    slots: tuple[tuple[str, tuple[str, ...]], ...]

    def fill(self, values: Mapping[str, Any], html_parts: frozenset[str]) -> dict[str, str]:
        filled: dict[str, str] = {}
        for part, text in self.content.items():
            for marker, path in self.slots:
                if marker in text:
                    value = str(_at(values, path))
                    text = text.replace(marker, str(escape(value)) if part in html_parts else value)
            filled[part] = text
        return filled


def _at(values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    found: Any = values
    for key in path:
        found = found[key]
    return found


def _with_markers(
    values: Mapping[str, Any],
    token: str,
    slots: list[tuple[str, tuple[str, ...]]],
    path: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """``values`` with every string replaced by a marker (recorded in ``slots``); None
    when a value is neither a string nor a mapping of them (no slot can stand for it)."""
    marked: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, str):
            marker = f"slot{token}x{len(slots)}y"
            slots.append((marker, (*path, key)))
            marked[key] = marker
        elif isinstance(value, Mapping):
            inner = _with_markers(value, token, slots, (*path, key))
            if inner is None:
                return None
            marked[key] = inner
        else:
            return None
    return marked


class CampaignComposer(Composer):
    """A :class:`Composer` that renders each (type, channel, locale, event) once when
    its templates read nothing of the recipient but the channel's per-recipient values;
    counts renders for the bench."""

    def __init__(self, base: Composer) -> None:
        super().__init__(base.renderer, base.context_extras)
        self._shared: dict[tuple[str, str, str, int], dict[str, str]] = {}
        self._slotted: dict[tuple[str, str, str, int], Slotted] = {}
        self._sharing: dict[tuple[str, str, str], Sharing] = {}
        self._checked: set[tuple[str, str, str]] = set()
        #: Random per process, so that no payload can forge a slot's marker.
        self._token = secrets.token_hex(8)
        #: Renders done, and renders saved by sharing.
        self.renders = 0
        self.shared = 0

    def sharing(self, row: Row, channel: Channel) -> Sharing:
        c = row.candidate
        key = (row.template_type, channel.name, c.recipient.locale)
        found = self._sharing.get(key)
        if found is None:
            extra = frozenset(channel.template_context(c.recipient, c.type, c.notification_id))
            found = Sharing.SHARED
            for part in channel.parts:
                name = self.renderer.find(row.template_type, channel.name, part, c.recipient.locale)
                if name is None:
                    continue
                read = names_read(self.renderer, name, part)
                if read is None or read & PER_RECIPIENT:
                    found = Sharing.PER_RECIPIENT
                    break
                if read & extra:
                    found = Sharing.SLOTS
            self._sharing[key] = found
        return found

    def varies(self, row: Row, channel: Channel) -> bool:
        """Whether ``row``'s content may differ from one recipient to the next (one
        render cannot stand for everyone's)."""
        return self.sharing(row, channel) is not Sharing.SHARED

    def render(self, row: Row, channel: Channel) -> dict[str, str]:
        sharing = self.sharing(row, channel)
        if sharing is Sharing.PER_RECIPIENT:
            self.renders += 1
            return super().render(row, channel)
        c = row.candidate
        key = (row.template_type, channel.name, c.recipient.locale, row.event_id)
        if sharing is Sharing.SLOTS:
            return self._render_slotted(row, channel, key)
        content = self._shared.get(key)
        if content is None:
            self.renders += 1
            content = self._shared[key] = super().render(row, channel)
        else:
            self.shared += 1
        return content

    def _render_slotted(
        self, row: Row, channel: Channel, key: tuple[str, str, str, int]
    ) -> dict[str, str]:
        c = row.candidate
        added = channel.template_context(c.recipient, c.type, c.notification_id)
        slotted = self._slotted.get(key)
        if slotted is None:
            slots: list[tuple[str, tuple[str, ...]]] = []
            marked = _with_markers(added, self._token, slots)
            if marked is None:
                self._per_recipient_for_good(row, channel)
                self.renders += 1
                return super().render(row, channel)
            context = {**self.context(row, channel), **marked}
            content = self.renderer.render(
                row.template_type,
                channel.name,
                channel.parts,
                c.recipient.locale,
                context,
                optional=channel.optional_parts,
            )
            self.renders += 1
            slotted = self._slotted[key] = Slotted(content, tuple(slots))
        else:
            self.shared += 1
        filled = slotted.fill(added, HTML_PARTS)
        kind = key[:3]
        if kind not in self._checked:
            whole = super().render(row, channel)
            self.renders += 1
            if whole != filled:
                self._per_recipient_for_good(row, channel)
                return whole
            self._checked.add(kind)
        return filled

    def _per_recipient_for_good(self, row: Row, channel: Channel) -> None:
        c = row.candidate
        self._sharing[(row.template_type, channel.name, c.recipient.locale)] = Sharing.PER_RECIPIENT

    def forget(self) -> None:
        """Drop shared renders (between runs: templates may have changed)."""
        self._shared.clear()
        self._slotted.clear()
        self._sharing.clear()
        self._checked.clear()

    def stats(self) -> dict[str, Any]:
        return {"renders": self.renders, "shared": self.shared}
