"""Rendering one event's content once per (template, locale), not per recipient.

A campaign run, or a direct event to many, sends one event's data to everyone, so a
template that reads nothing of the recipient renders the same text for all who share a
locale. Jinja2's ``meta.find_undeclared_variables`` tells which names each part's
template reads, and the part is

- *shared* when it reads nothing per recipient: rendered once;
- *slotted* when it reads only what the channel adds per recipient (``links`` for email:
  every campaign email carries its reader's own unsubscribe link): rendered once with a
  slot in place of each such value, and each recipient's values filled into the slots
  (HTML-escaped in HTML parts, as autoescaping would). The first recipient of each
  (template, locale) is also rendered in full, and the part goes per recipient for good
  if the two differ (a filter applied to a link, say);
- *own* when it reads ``recipient``, ``notification``, formats a time in the recipient's
  zone (the ``datetime``, ``date`` and ``time`` filters without ``tz=``), or pulls in
  other templates (``extends``/``include``, whose reads we do not follow): rendered per
  recipient as usual.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta, nodes
from markupsafe import escape

from dispatcher.channels.base import Channel
from dispatcher.engine.compose import Composer, Row
from dispatcher.templating.renderer import HTML_PARTS, Renderer

#: Context names that differ from one recipient to the next.
PER_RECIPIENT = frozenset({"recipient", "notification"})
#: Filters that read the recipient's time zone from the context (unless given ``tz=``):
#: recipients who share a locale may still see different text.
ZONED_FILTERS = frozenset({"datetime", "date", "time"})


def reads(renderer: Renderer, name: str, part: str) -> frozenset[str] | None:
    """The context names template ``name`` (for ``part``) reads, a filter that formats a
    time in the recipient's zone counting as ``recipient``; None when that cannot be
    told (it pulls in other templates, or does not parse: the render reports it)."""
    env = renderer.env_for(part)
    renderer.sync()
    loader = env.loader
    if loader is None:
        return None
    try:
        source, _, _ = loader.get_source(env, name)
        parsed = env.parse(source)
    except jinja2.TemplateError:
        return None
    if any(True for _ in meta.find_referenced_templates(parsed)):
        return None
    names = set(meta.find_undeclared_variables(parsed))
    for used in parsed.find_all(nodes.Filter):
        if used.name in ZONED_FILTERS and not any(k.key == "tz" for k in used.kwargs):
            names.add("recipient")
    return frozenset(names)


def reads_recipient(
    renderer: Renderer, name: str, part: str, per_recipient: frozenset[str]
) -> bool:
    """Whether template ``name`` (for ``part``) may read any of ``per_recipient``."""
    names = reads(renderer, name, part)
    return names is None or bool(names & per_recipient)


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


#: Shared renders kept at most (a few per event; older events' are dropped together).
SHARED_LIMIT = 1024

#: What a shared render was made from besides its key: the event's payload and actor. An
#: event id alone is not enough: ids start again in a database emptied or restored
#: under a running worker, and a render must never be served for another event's data.
_Stamp = tuple[Any, str | None]


def _stamp(row: Row) -> _Stamp:
    return (row.data, row.actor)


def _same(cached: _Stamp, stamp: _Stamp) -> bool:
    """Whether a render made for ``cached`` serves ``stamp`` (the rows of one chunk share
    one payload object, so the comparison is mostly an identity check)."""
    return (cached[0] is stamp[0] or cached[0] == stamp[0]) and cached[1] == stamp[1]


class RenderOnceComposer(Composer):
    """A :class:`Composer` that renders each (type, channel, locale, event) once where
    its templates read nothing of the recipient, with slots where they read only the
    channel's per-recipient values; counts renders for the bench."""

    def __init__(self, base: Composer) -> None:
        super().__init__(base.renderer, base.context_extras)
        #: Renders by (type, channel, locale, event), each with the event's stamp.
        self._shared: dict[tuple[str, str, str, int], tuple[_Stamp, dict[str, str]]] = {}
        self._per_recipient: dict[tuple[str, str, str], bool] = {}
        self._needs_id: dict[tuple[str, str, str], bool] = {}
        self._parts: dict[tuple[str, str, str], tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._slotted: dict[tuple[str, str, str, int], tuple[_Stamp, Slotted]] = {}
        self._checked: set[tuple[str, str, str]] = set()
        #: Random per process, so that no payload can forge a slot's marker.
        self._token = secrets.token_hex(8)
        #: Renders done, and renders saved by sharing.
        self.renders = 0
        self.shared = 0

    def varies(self, row: Row, channel: Channel) -> bool:
        """Whether ``row``'s content on ``channel`` may differ from one recipient to the
        next."""
        return self._reads(row, channel, PER_RECIPIENT, self._per_recipient)

    def needs_notification(self, row: Row, channel: Channel) -> bool:
        """Whether rendering ``row`` on ``channel`` may need its notification's id (so it
        cannot be rendered before the notification is stored)."""
        return self._reads(row, channel, frozenset({"notification"}), self._needs_id)

    def _reads(
        self,
        row: Row,
        channel: Channel,
        names: frozenset[str],
        cache: dict[tuple[str, str, str], bool],
    ) -> bool:
        c = row.candidate
        key = (row.template_type, channel.name, c.recipient.locale)
        found_any = cache.get(key)
        if found_any is None:
            extra = frozenset(channel.template_context(c.recipient, c.type, c.notification_id))
            found_any = False
            for part in channel.parts:
                found = self.renderer.find(
                    row.template_type, channel.name, part, c.recipient.locale
                )
                if found is not None and reads_recipient(self.renderer, found, part, names | extra):
                    found_any = True
                    break
            cache[key] = found_any
        return found_any

    def parts_of(self, row: Row, channel: Channel) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``channel``'s parts rendered for each recipient (own), and those rendered once
        with slots for the channel's per-recipient values (slotted); the others are
        shared by everyone with the same locale."""
        c = row.candidate
        key = (row.template_type, channel.name, c.recipient.locale)
        found = self._parts.get(key)
        if found is None:
            extra = frozenset(channel.template_context(c.recipient, c.type, c.notification_id))
            own: list[str] = []
            slotted: list[str] = []
            for part in channel.parts:
                name = self.renderer.find(row.template_type, channel.name, part, c.recipient.locale)
                if name is None:
                    continue
                names = reads(self.renderer, name, part)
                if names is None or names & PER_RECIPIENT:
                    own.append(part)
                elif names & extra:
                    slotted.append(part)
            found = self._parts[key] = (tuple(own), tuple(slotted))
        return found

    def render(self, row: Row, channel: Channel) -> dict[str, str]:
        own, slotted = self.parts_of(row, channel) if self.varies(row, channel) else ((), ())
        c = row.candidate
        key = (row.template_type, channel.name, c.recipient.locale, row.event_id)
        stamp = _stamp(row)
        entry = self._shared.get(key)
        if entry is None or not _same(entry[0], stamp):
            self.renders += 1
            if len(self._shared) >= SHARED_LIMIT:
                self._shared.clear()
            shared = [part for part in channel.parts if part not in own and part not in slotted]
            content = self.render_parts(row, channel, shared)
            self._shared[key] = (stamp, content)
        else:
            content = entry[1]
            self.shared += 1
        if not own and not slotted:
            return content
        pieces = dict(content)
        if slotted:
            pieces.update(self._render_slotted(row, channel, key, slotted))
        # A slotted part whose slots could not stand in has joined the own parts.
        mine = [part for part in self.parts_of(row, channel)[0] if part not in pieces]
        if mine:
            self.renders += 1
            pieces.update(self.render_parts(row, channel, mine))
        return {part: pieces[part] for part in channel.parts if part in pieces}

    def _render_slotted(
        self, row: Row, channel: Channel, key: tuple[str, str, str, int], parts: tuple[str, ...]
    ) -> dict[str, str]:
        """``parts`` for ``row``'s recipient from one render with slots; {} when they
        must be rendered for each (the caller does, as own parts)."""
        c = row.candidate
        added = channel.template_context(c.recipient, c.type, c.notification_id)
        stamp = _stamp(row)
        entry = self._slotted.get(key)
        if entry is None or not _same(entry[0], stamp):
            slots: list[tuple[str, tuple[str, ...]]] = []
            marked = _with_markers(added, self._token, slots)
            if marked is None:
                self._own_for_good(row, channel, parts)
                return {}
            context = {**self.context(row, channel), **marked}
            rendered = self.renderer.render(
                row.template_type,
                channel.name,
                parts,
                c.recipient.locale,
                context,
                optional=channel.optional_parts,
            )
            self.renders += 1
            if len(self._slotted) >= SHARED_LIMIT:
                self._slotted.clear()
            slotted = Slotted(rendered, tuple(slots))
            self._slotted[key] = (stamp, slotted)
        else:
            slotted = entry[1]
            self.shared += 1
        filled = slotted.fill(added, HTML_PARTS)
        kind = key[:3]
        if kind not in self._checked:
            whole = self.render_parts(row, channel, parts)
            self.renders += 1
            if whole != filled:
                self._own_for_good(row, channel, parts)
                return whole
            self._checked.add(kind)
        return filled

    def _own_for_good(self, row: Row, channel: Channel, parts: tuple[str, ...]) -> None:
        c = row.candidate
        key = (row.template_type, channel.name, c.recipient.locale)
        own, slotted = self.parts_of(row, channel)
        self._parts[key] = (
            tuple(p for p in channel.parts if p in own or p in parts),
            tuple(p for p in slotted if p not in parts),
        )

    def forget(self) -> None:
        """Drop shared renders (between runs: templates may have changed)."""
        self._shared.clear()
        self._per_recipient.clear()
        self._needs_id.clear()
        self._parts.clear()
        self._slotted.clear()
        self._checked.clear()

    def stats(self) -> dict[str, Any]:
        return {"renders": self.renders, "shared": self.shared}
