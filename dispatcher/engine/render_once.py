"""Rendering one event's content once per (template, locale), not per recipient.

A campaign run, or a direct event to many, sends one event's data to everyone, so a
template that reads nothing of the recipient renders the same text for all who share a
locale. Jinja2's ``meta.find_undeclared_variables`` tells which names a template reads;
a template that reads ``recipient``, ``notification``, a name the channel adds per
recipient (``links`` for email), that formats a time in the recipient's zone (the
``datetime``, ``date`` and ``time`` filters without ``tz=``), or that pulls in other
templates (``extends``/``include``, whose reads we do not follow) is rendered per
recipient as usual.
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2 import meta, nodes

from dispatcher.channels.base import Channel
from dispatcher.engine.compose import Composer, Row
from dispatcher.templating.renderer import Renderer

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


#: Shared renders kept at most (a few per event; older events' are dropped together).
SHARED_LIMIT = 1024


class RenderOnceComposer(Composer):
    """A :class:`Composer` that renders each (type, channel, locale, event) once when
    its templates read nothing of the recipient; counts renders for the bench."""

    def __init__(self, base: Composer) -> None:
        super().__init__(base.renderer, base.context_extras)
        self._shared: dict[tuple[str, str, str, int], dict[str, str]] = {}
        self._per_recipient: dict[tuple[str, str, str], bool] = {}
        self._needs_id: dict[tuple[str, str, str], bool] = {}
        self._own_parts: dict[tuple[str, str, str], tuple[str, ...]] = {}
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

    def own_parts(self, row: Row, channel: Channel) -> tuple[str, ...]:
        """The parts of ``channel`` whose templates may read the recipient: rendered for
        each; the others are shared by everyone with the same locale."""
        c = row.candidate
        key = (row.template_type, channel.name, c.recipient.locale)
        own = self._own_parts.get(key)
        locale = c.recipient.locale
        if own is None:
            extra = frozenset(channel.template_context(c.recipient, c.type, c.notification_id))
            names = PER_RECIPIENT | extra
            own = tuple(
                part
                for part in channel.parts
                if (found := self.renderer.find(row.template_type, channel.name, part, locale))
                is not None
                and reads_recipient(self.renderer, found, part, names)
            )
            self._own_parts[key] = own
        return own

    def render(self, row: Row, channel: Channel) -> dict[str, str]:
        own = self.own_parts(row, channel) if self.varies(row, channel) else ()
        c = row.candidate
        key = (row.template_type, channel.name, c.recipient.locale, row.event_id)
        content = self._shared.get(key)
        if content is None:
            self.renders += 1
            if len(self._shared) >= SHARED_LIMIT:
                self._shared.clear()
            shared = [part for part in channel.parts if part not in own]
            content = self._shared[key] = self.render_parts(row, channel, shared)
        else:
            self.shared += 1
        if not own:
            return content
        self.renders += 1
        mine = self.render_parts(row, channel, own)
        both = (mine.get(part, content.get(part)) for part in channel.parts)
        return {
            part: text for part, text in zip(channel.parts, both, strict=True) if text is not None
        }

    def forget(self) -> None:
        """Drop shared renders (between runs: templates may have changed)."""
        self._shared.clear()
        self._per_recipient.clear()
        self._needs_id.clear()
        self._own_parts.clear()

    def stats(self) -> dict[str, Any]:
        return {"renders": self.renders, "shared": self.shared}
