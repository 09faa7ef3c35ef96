"""Templates made for a campaign: checked like operators' templates, stored with it.

A campaign may carry its own content instead of its type's templates::

    templates={
        "in_app": {"en": {"title": "...", "body": "..."}, "de": {"title": "..."}},
        "email": {"en": {"subject": "...", "text": "...", "html": "..."}},
    }

channel -> locale -> part -> Jinja source. Every channel the campaign sends on needs
them, with every required part in the default locale; other locales may give some
parts and fall back for the rest (``de-AT`` -> ``de`` -> default), as files do. Each part
is compiled in the same sandbox and test-rendered with the campaign's data and a sample
recipient before anything is stored; the first failure is a :class:`TemplateError` that
names the part (``templates.email.de.subject:1: missing variable 'seller'``).

They are stored under a content key (:mod:`dispatcher.templating.campaign_sources`) and
rendered once per locale when they read nothing of the recipient, like type templates.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from dispatcher.catalog import NotificationType
from dispatcher.channels.runtime import ChannelRuntime
from dispatcher.db.models import CampaignTemplate, table
from dispatcher.errors import InvalidCampaignError, InvalidLocaleError, UnstorableValueError
from dispatcher.subscribers.addresses import validate_locale
from dispatcher.templating.campaign_sources import KEY_PREFIX
from dispatcher.templating.checks import compile_named, sample_context
from dispatcher.templating.renderer import Renderer
from dispatcher.templating.versions import MAX_SOURCE_CHARS
from dispatcher.validation import check_storable

_T = table(CampaignTemplate)
#: Locales one campaign may carry per channel.
MAX_LOCALES = 50


@dataclass(frozen=True)
class Part:
    """One checked part of a campaign's templates."""

    channel: str
    locale: str
    part: str
    source: str


def new_key() -> str:
    """A fresh content key (never reused, so renderers may keep what they loaded)."""
    return KEY_PREFIX + secrets.token_hex(16)


def _mapping(value: Any, field: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not value:
        raise InvalidCampaignError(f"{field} must be a non-empty object of {what}", field=field)
    return value


def check_templates(
    renderer: Renderer,
    channels: ChannelRuntime,
    notification_type: NotificationType,
    sent_on: Sequence[str],
    data: Mapping[str, Any],
    templates: Mapping[str, Any],
) -> list[Part]:
    """Every part of ``templates``, checked; nothing is written.

    Raises:
        InvalidCampaignError: (``field`` like ``templates.email.de``) a malformed
            mapping, a channel the campaign does not send on or one it sends on without
            templates, an unknown part or locale, a required part missing in the default
            locale, an empty, oversized or unstorable source.
        TemplateError: a part does not compile or does not render with the campaign's
            data; the message starts with ``templates.<channel>.<locale>.<part>:<line>``.
    """
    _mapping(templates, "templates", "channel: {locale: {part: source}}")
    extra = [c for c in templates if c not in sent_on]
    if extra:
        raise InvalidCampaignError(
            f"templates: {extra} not among this campaign's channels {list(sent_on)}",
            field="templates",
        )
    missing = [c for c in sent_on if c not in templates]
    if missing:
        raise InvalidCampaignError(
            f"templates: no templates for channel(s) {missing}; a campaign with its own "
            "templates needs them for every channel it sends on",
            field="templates",
        )
    default = renderer.default_locale
    parts: list[Part] = []
    for channel_name in sent_on:
        field = f"templates.{channel_name}"
        cls = channels.registry.get(channel_name)
        known = tuple(dict.fromkeys((*cls.parts, *cls.optional_parts)))
        required = [p for p in cls.parts if p not in cls.optional_parts]
        by_locale = _mapping(templates[channel_name], field, "locale: {part: source}")
        if len(by_locale) > MAX_LOCALES:
            raise InvalidCampaignError(f"{field}: at most {MAX_LOCALES} locales", field=field)
        locales: dict[str, Mapping[str, Any]] = {}
        for raw_locale, sources in by_locale.items():
            try:
                locale = validate_locale(raw_locale)
            except InvalidLocaleError as exc:
                raise InvalidCampaignError(f"{field}: {exc}", field=field) from None
            locales[locale] = _mapping(sources, f"{field}.{locale}", "part: source")
        if default not in locales:
            raise InvalidCampaignError(
                f"{field}: no templates in the default locale {default!r} (other locales "
                "fall back to it)",
                field=field,
            )
        lacking = [p for p in required if p not in locales[default]]
        if lacking:
            raise InvalidCampaignError(
                f"{field}.{default}: missing part(s) {lacking}; {channel_name} needs "
                f"{required} in the default locale",
                field=f"{field}.{default}",
            )
        channel = channels.get(channel_name)
        for locale, sources in locales.items():
            where = f"{field}.{locale}"
            context = sample_context(notification_type, channel, locale, data)
            for part, source in sources.items():
                if part not in known:
                    raise InvalidCampaignError(
                        f"{where}: {channel_name} has no part {part!r}; parts: {list(known)}",
                        field=where,
                    )
                _check_source(source, f"{where}.{part}")
                name = f"{where}.{part}"
                template = compile_named(renderer, source, part, name, name)
                renderer.render_template(template, name, context)
                parts.append(Part(channel_name, locale, part, source))
    return parts


def _check_source(source: Any, field: str) -> None:
    if not isinstance(source, str) or not source.strip():
        raise InvalidCampaignError(
            f"{field}: a template source must be non-empty text", field=field
        )
    if len(source) > MAX_SOURCE_CHARS:
        raise InvalidCampaignError(
            f"{field}: template source exceeds {MAX_SOURCE_CHARS} characters", field=field
        )
    try:
        check_storable(source, field)
    except UnstorableValueError as exc:
        raise InvalidCampaignError(str(exc), field=field) from None


def store(conn: Connection, campaign_id: int, key: str, parts: Sequence[Part]) -> None:
    """Insert the checked parts of campaign ``campaign_id`` under content ``key``."""
    conn.execute(
        insert(_T),
        [
            {
                "campaign_id": campaign_id,
                "content": key,
                "channel": p.channel,
                "locale": p.locale,
                "part": p.part,
                "source": p.source,
            }
            for p in parts
        ],
    )


def load(conn: Connection, campaign_id: int) -> dict[str, dict[str, dict[str, str]]]:
    """A campaign's own templates as given to ``create`` (empty when it has none)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    rows = conn.execute(
        select(_T.c.channel, _T.c.locale, _T.c.part, _T.c.source)
        .where(_T.c.campaign_id == campaign_id)
        .order_by(_T.c.channel, _T.c.locale, _T.c.part)
    )
    for channel, locale, part, source in rows:
        out.setdefault(channel, {}).setdefault(locale, {})[part] = source
    return out
