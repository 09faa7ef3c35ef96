"""Composing: from a claimed delivery and its decision to a rendered message.

Applies a policy decision (skip, defer, send) and renders what is to be sent in the
recipient's locale and time zone. Knows nothing of transactions or channels' sending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dispatcher import log
from dispatcher.channels.base import Channel, Message
from dispatcher.channels.clicks import LinkTracker
from dispatcher.engine.records import Record
from dispatcher.enums import DeliveryStatus, Reason
from dispatcher.errors import TemplateError, TemplateLimitError
from dispatcher.policies.base import SEND, Action, Candidate, Decision, Digest
from dispatcher.templating.context import template_context
from dispatcher.templating.renderer import Renderer

#: The folder of the digest templates that serve every type without its own.
GENERIC_DIGEST = "_digest"


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


@dataclass(frozen=True)
class Row:
    """A claimed delivery with what composing its message needs."""

    candidate: Candidate
    event_id: int
    data: Mapping[str, Any]
    created_at: datetime
    #: Who caused the event, if the app said.
    actor: str | None = None
    #: A campaign's own templates (their content key); None: the type's templates.
    content: str | None = None

    @property
    def template_type(self) -> str:
        """What the renderer looks templates up by: the content key or the type name."""
        return self.content or self.candidate.type.name


class Composer:
    """Turns decided rows into messages for one process's renderer."""

    def __init__(self, renderer: Renderer, context_extras: Mapping[str, Any] | None = None) -> None:
        self.renderer = renderer
        self.context_extras = dict(context_extras or {})

    def context(self, row: Row, channel: Channel) -> dict[str, Any]:
        """What templates see: the payload's fields, ``recipient``, ``notification``, and
        whatever the channel adds (``links`` for email)."""
        c = row.candidate
        return template_context(
            data=row.data,
            recipient=c.recipient,
            notification_type=c.type,
            notification_id=c.notification_id,
            priority=c.priority,
            created_at=row.created_at,
            channel=channel,
            extras=self.context_extras,
            actor=row.actor,
        )

    def _tracker(self, channel: Channel) -> LinkTracker:
        settings = channel.settings
        return LinkTracker(
            settings.signing_secret,
            settings.public_url,
            ttl=timedelta(days=settings.click_ttl_days),
        )

    def render(self, row: Row, channel: Channel) -> dict[str, str]:
        """Every part of ``channel`` for ``row`` (a campaign's composer renders once per
        locale when the templates read nothing of the recipient).

        Raises:
            TemplateError: a part did not render.
        """
        return self.render_parts(row, channel, channel.parts)

    def render_parts(self, row: Row, channel: Channel, parts: Sequence[str]) -> dict[str, str]:
        """The ``parts`` of :meth:`render` alone."""
        if not parts:
            return {}
        c = row.candidate
        return self.renderer.render(
            row.template_type,
            channel.name,
            parts,
            c.recipient.locale,
            self.context(row, channel),
            optional=channel.optional_parts,
        )

    def render_digest(self, row: Row, channel: Channel, digest: Digest) -> dict[str, str]:
        """Every part of ``channel`` for the digest ``row`` carries.

        Templates: ``<type>/<locale>/<channel>_digest/<part>.j2`` when the type has its
        own, else the generic ``_digest/<locale>/<channel>/<part>.j2``. Besides what
        :meth:`context` gives (the carrier's own fields), they see ``items`` (each with
        ``type``, ``data``, ``created_at`` in the reader's time zone and
        ``notification_id``, oldest first) and ``digest`` (``window_id``, ``count``,
        ``opened_at``, ``closes_at``).

        Raises:
            TemplateError: a part did not render (the window's items stay recorded; the
                failed digest is sent again by ``dispatcher deliveries retry``).
        """
        c = row.candidate
        zone = _zone(c.recipient.timezone)
        context = self.context(row, channel)
        context["items"] = [
            {
                "type": e.type,
                "data": e.data,
                "created_at": e.created_at.astimezone(zone),
                "notification_id": e.notification_id,
            }
            for e in digest.entries
        ]
        context["digest"] = {
            "window_id": digest.window_id,
            "count": len(digest.entries),
            "opened_at": digest.opened_at.astimezone(zone),
            "closes_at": digest.closes_at.astimezone(zone),
        }
        own = f"{channel.name}_digest"
        required = [p for p in channel.parts if p not in set(channel.optional_parts)]
        has_own = all(self.renderer.find(c.type.name, own, p, c.recipient.locale) for p in required)
        type_name, folder = (c.type.name, own) if has_own else (GENERIC_DIGEST, channel.name)
        return self.renderer.render(
            type_name,
            folder,
            channel.parts,
            c.recipient.locale,
            context,
            optional=channel.optional_parts,
        )

    def messages(
        self,
        channel: Channel,
        rows: Sequence[Row],
        decisions: Mapping[int, Decision],
    ) -> tuple[list[Record], list[Message]]:
        """Apply the decisions and render what is to be sent: records for the rows that
        are settled here (skipped, deferred, template errors), messages for the rest."""
        records: list[Record] = []
        messages: list[Message] = []
        for row in rows:
            c = row.candidate
            decision = decisions.get(c.delivery_id, SEND)
            if decision.action is Action.SKIP:
                records.append(
                    Record(c.delivery_id, DeliveryStatus.SKIPPED, decision.reason, decision.detail)
                )
                continue
            if decision.action is Action.DEFER:
                records.append(
                    Record(
                        c.delivery_id,
                        DeliveryStatus.SCHEDULED,
                        decision.reason,
                        decision.detail,
                        scheduled_for=decision.until,
                        refund_attempt=True,
                    )
                )
                continue
            try:
                if decision.digest is not None:
                    content = self.render_digest(row, channel, decision.digest)
                else:
                    content = self.render(row, channel)
            except TemplateError as exc:
                limit = isinstance(exc, TemplateLimitError)
                reason = Reason.TEMPLATE_LIMIT if limit else Reason.TEMPLATE_ERROR
                records.append(Record(c.delivery_id, DeliveryStatus.FAILED, reason, exc.reason))
                log.error(
                    f"delivery.{reason.value}",
                    delivery_id=c.delivery_id,
                    notification_id=c.notification_id,
                    channel=channel.name,
                    reason=exc.reason,
                )
                continue
            if channel.link_parts and channel.settings.click_tracking:
                content = self._tracker(channel).rewrite(c.delivery_id, content, channel.link_parts)
            messages.append(
                Message(
                    delivery_id=c.delivery_id,
                    notification_id=c.notification_id,
                    event_id=row.event_id,
                    type=c.type,
                    priority=c.priority,
                    recipient=c.recipient,
                    content=content,
                    data=row.data,
                    attempt=c.attempt,
                    created_at=row.created_at,
                    realtime=decision.realtime,
                    actor=row.actor,
                )
            )
        return records, messages
