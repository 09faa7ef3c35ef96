"""The dry run: who would get a campaign now, on which channel, who would not and why,
and a rendered sample per locale. It reads; it writes no row and no counter.

The audience is resolved as a run would resolve it now; preferences and quiet hours are
the policies' own decisions; rate limits are read from their counters without adding
to them (``ZCOUNT`` over the window).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import redis

from dispatcher import log, names
from dispatcher.campaigns import audience as audiences
from dispatcher.campaigns import segments
from dispatcher.campaigns.definition import parse_audience
from dispatcher.catalog import Catalog
from dispatcher.channels.runtime import ChannelRuntime
from dispatcher.db.engine import Store
from dispatcher.db.models import Subscriber, table
from dispatcher.enums import Priority
from dispatcher.errors import TemplateError
from dispatcher.policies.base import Action, Candidate
from dispatcher.policies.preference import PreferencePolicy
from dispatcher.policies.quiet_hours import QuietHoursPolicy
from dispatcher.settings import Settings
from dispatcher.subscribers.recipient import Recipient
from dispatcher.templating.context import template_context
from dispatcher.templating.renderer import Renderer

_S = table(Subscriber)
#: Locales sampled at most.
MAX_SAMPLES = 20


@dataclass
class ChannelPreview:
    """One channel's counts in a dry run."""

    #: Would be sent (or stored, for in-app) now.
    would_send: int = 0
    #: Turned off by a preference.
    opted_out: int = 0
    #: Inside quiet hours now: deferred (email, push) or stored without a ping (in-app;
    #: these count in ``would_send`` too).
    in_quiet_hours: int = 0
    #: No address on this channel (no email, no devices).
    no_address: int = 0
    #: Over the type's rate limit on this channel right now.
    rate_limited: int = 0
    #: The channel has no provider configured here: all of them would be skipped.
    not_configured: int = 0


@dataclass
class Preview:
    """What :meth:`Campaigns.preview` returns."""

    campaign_id: int
    targeted: int
    at: datetime
    channels: dict[str, ChannelPreview] = field(default_factory=dict)
    #: locale -> channel -> part -> text (or ``{"error": reason}``).
    samples: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["at"] = self.at.isoformat()
        return out


def dry_run(
    store: Store,
    catalog: Catalog,
    renderer: Renderer,
    channels: ChannelRuntime,
    settings: Settings,
    campaign: Any,
    now: datetime,
) -> Preview:
    """The :class:`Preview` of ``campaign`` (a :class:`CampaignInfo`) at ``now``."""
    notification_type = catalog.get(campaign.type)
    priority = Priority(campaign.priority)
    columns = [_S.c.id, _S.c.external_id, _S.c.email, _S.c.attributes, _S.c.locale, _S.c.timezone]
    preview = Preview(campaign.id, 0, now)
    with store.session() as session:
        conn = session.connection()
        audience = segments.resolve(conn, parse_audience(campaign.audience))
        rows = audiences.members(conn, audience, store.is_postgres, columns) if audience else []
        preview.targeted = len(rows)
        recipients = [
            Recipient.from_columns(
                id=r.id,
                external_id=r.external_id,
                locale=r.locale or settings.default_locale,
                timezone=r.timezone,
                email=r.email,
                attributes=r.attributes,
            )
            for r in rows
        ]
        for name in campaign.channels:
            counts = preview.channels[name] = ChannelPreview()
            channel = channels.get(name)
            if channel is None or not channel.is_configured():
                counts.not_configured = len(recipients)
                continue
            missing = channel.missing_addresses(recipients, session)
            reachable = [r for r in recipients if r.id not in missing]
            counts.no_address = len(missing)
            candidates = [
                Candidate(i, 0, name, notification_type, priority, r, 1, channel.stores_silently)
                for i, r in enumerate(reachable)
            ]
            refused = PreferencePolicy().decide(session, candidates, now)
            counts.opted_out = len(refused)
            allowed = [c for c in candidates if c.delivery_id not in refused]
            quiet = QuietHoursPolicy().decide(session, allowed, now)
            counts.in_quiet_hours = len(quiet)
            deferred = {i for i, d in quiet.items() if d.action is Action.DEFER}
            allowed = [c for c in allowed if c.delivery_id not in deferred]
            limited = _rate_limited(settings, allowed, name, now)
            counts.rate_limited = len(limited)
            counts.would_send = len(allowed) - len(limited)
    by_locale: dict[str, Recipient] = {}
    for r in recipients:
        if len(by_locale) >= MAX_SAMPLES:
            break
        by_locale.setdefault(r.locale, r)
    for locale, recipient in sorted(by_locale.items()):
        sample = preview.samples[locale] = {}
        for name in campaign.channels:
            channel = channels.get(name)
            if channel is None:
                continue
            context = template_context(
                data=campaign.data,
                recipient=recipient,
                notification_type=notification_type,
                notification_id=0,
                priority=priority,
                created_at=now,
                channel=channel,
            )
            try:
                sample[name] = renderer.render(
                    campaign.content or notification_type.name,
                    name,
                    channel.parts,
                    locale,
                    context,
                    optional=channel.optional_parts,
                )
            except TemplateError as exc:
                sample[name] = {"error": exc.reason}
    return preview


def _rate_limited(
    settings: Settings, candidates: list[Candidate], channel: str, now: datetime
) -> set[int]:
    """Candidates whose counter for ``channel`` is full now (read only)."""
    if not candidates:
        return set()
    limit = candidates[0].type.rate_limits.get(channel)
    if limit is None or candidates[0].priority is Priority.URGENT:
        return set()
    now_ms = int(now.timestamp() * 1000)
    window = limit.per_seconds * 1000
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        with client.pipeline(transaction=False) as pipe:
            for c in candidates:
                key = names.rate_limit(settings.redis_prefix, c.recipient.id, channel, c.type.name)
                pipe.zcount(key, f"({now_ms - window}", "+inf")
            counts = pipe.execute()
    except redis.RedisError as exc:
        log.warning("campaign.preview_rate_unknown", error=type(exc).__name__)
        return set()
    finally:
        client.close()
    return {c.delivery_id for c, n in zip(candidates, counts, strict=True) if int(n) >= limit.count}
