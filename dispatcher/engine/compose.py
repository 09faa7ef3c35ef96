"""Composing: from a claimed delivery and its decision to a rendered message.

Applies a policy decision (skip, defer, send) and renders what is to be sent in the
recipient's locale and time zone. Knows nothing of transactions or channels' sending.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dispatcher import log
from dispatcher.channels.base import Channel, Message
from dispatcher.channels.clicks import LinkTracker
from dispatcher.engine.records import Record
from dispatcher.enums import DeliveryStatus, Reason
from dispatcher.errors import TemplateError, TemplateLimitError
from dispatcher.policies.base import SEND, Action, Candidate, Decision
from dispatcher.templating.context import template_context
from dispatcher.templating.renderer import Renderer


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
        c = row.candidate
        return self.renderer.render(
            row.template_type,
            channel.name,
            channel.parts,
            c.recipient.locale,
            self.context(row, channel),
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
