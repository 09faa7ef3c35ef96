"""Email: render subject, text and HTML; send them over a pool of SMTP connections.

The channel builds messages (:mod:`dispatcher.channels.email.message`) and classifies outcomes; the
provider (:class:`~dispatcher.channels.email.smtp.SmtpPool`) carries them. Each worker
process keeps one pool on its own event loop, reused across batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from dispatcher import log
from dispatcher.channels.base import Channel, ChannelContext, Message, Outcome, RetryPolicy
from dispatcher.channels.email.message import (
    EmailComposer,
    ascii_address,
    message_id_for,
    parse_mailbox,
)
from dispatcher.channels.email.smtp import Envelope, SmtpPool
from dispatcher.channels.email.unsubscribe import (
    issue_unsubscribe_token,
    preferences_url,
    unsubscribe_url,
)
from dispatcher.clock import utcnow
from dispatcher.enums import Reason
from dispatcher.errors import (
    DeliveryError,
    HeaderInjectionError,
    InvalidAddressError,
    PermanentDeliveryError,
)
from dispatcher.subscribers.recipient import Recipient

if TYPE_CHECKING:
    from dispatcher.catalog import NotificationType


class EmailChannel(Channel):
    """Sends ``multipart/alternative`` notification emails over SMTP."""

    name = "email"
    parts = ("subject", "text", "html")
    link_parts = {"text": "text", "html": "html"}
    address_kind = "email"

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        self.smtp = context.settings.smtp
        self._pool: SmtpPool | None = None

    def is_configured(self) -> bool:
        return bool(self.smtp.host)

    @property
    def in_flight(self) -> int:
        return self.smtp.pool_size

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.smtp.max_attempts,
            base_seconds=self.smtp.backoff_base_seconds,
            cap_seconds=self.smtp.backoff_cap_seconds,
        )

    @cached_property
    def composer(self) -> EmailComposer:
        """Message builder for the configured From/Reply-To (checked on first use).

        Raises:
            ConfigurationError: From, Reply-To or the Message-ID domain is malformed.
        """
        sender = parse_mailbox(self.smtp.from_address, setting="DISPATCHER_SMTP_FROM_ADDRESS")
        reply_to = (
            parse_mailbox(self.smtp.reply_to, setting="DISPATCHER_SMTP_REPLY_TO")
            if self.smtp.reply_to
            else None
        )
        return EmailComposer(
            sender,
            reply_to=reply_to,
            message_id_domain=self.smtp.message_id_domain or sender.domain,
        )

    # -- links --------------------------------------------------------------------

    def unsubscribe_link(self, recipient: Recipient, type: NotificationType) -> str | None:
        """The one-click link that turns this type's email off, or None when the type's
        email cannot be turned off (critical types that force email)."""
        if type.is_forced(self.name):
            return None
        token = issue_unsubscribe_token(
            self.settings.signing_secret,
            recipient.external_id,
            type=type.name,
            channel=self.name,
            ttl=timedelta(days=self.smtp.unsubscribe_ttl_days),
        )
        return unsubscribe_url(self.settings.public_url, token)

    def template_context(
        self, recipient: Recipient, type: NotificationType, notification_id: int
    ) -> Mapping[str, Any]:
        return {
            "links": {
                "base": self.settings.public_url.rstrip("/"),
                "unsubscribe": self.unsubscribe_link(recipient, type),
                "preferences": preferences_url(self.settings.public_url),
            }
        }

    # -- sending ------------------------------------------------------------------

    @property
    def pool(self) -> SmtpPool:
        if self._pool is None:
            self._pool = SmtpPool(self.smtp)
        return self._pool

    async def open(self) -> None:
        self.composer  # noqa: B018 - fail fast on a bad From before the first batch
        await self.pool.open()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def compose(self, message: Message) -> bytes:
        """The bytes of ``message`` as it goes to the server.

        Raises:
            InvalidAddressError: the stored address is not valid.
            HeaderInjectionError: the rendered subject contains a line break.
        """
        if not message.recipient.email:
            raise InvalidAddressError("subscriber has no email address")
        content = message.content
        return self.composer.compose(
            to=message.recipient.email,
            subject=content.get("subject", ""),
            text=content.get("text", ""),
            html=content.get("html", ""),
            message_id=self.message_id(message),
            date=utcnow(),
            unsubscribe_url=self.unsubscribe_link(message.recipient, message.type),
        )

    def message_id(self, message: Message) -> str:
        """The delivery's stable ``Message-ID``."""
        return message_id_for(
            message.delivery_id, message.created_at, self.composer.message_id_domain
        )

    def envelope(self, message: Message) -> Envelope:
        """The envelope of ``message``, built as late as possible (see ``send_many``).

        Raises:
            PermanentDeliveryError: ``invalid_address`` or ``header_injection``.
        """
        try:
            data = self.compose(message)
        except InvalidAddressError as exc:
            raise PermanentDeliveryError(str(exc), reason=Reason.INVALID_ADDRESS) from None
        except HeaderInjectionError as exc:
            log.warning("email.header_rejected", delivery_id=message.delivery_id, error=str(exc))
            raise PermanentDeliveryError(str(exc), reason="header_injection") from None
        assert message.recipient.email is not None
        return Envelope(self.composer.envelope_sender, ascii_address(message.recipient.email), data)

    async def send(self, messages: Sequence[Message]) -> Sequence[Outcome]:
        results = await self.pool.send_many(messages, self.envelope)
        return [self._outcome(m, r) for m, r in zip(messages, results, strict=True)]

    def _outcome(self, message: Message, result: object) -> Outcome:
        if isinstance(result, DeliveryError):
            log.info(
                "email.not_accepted",
                delivery_id=message.delivery_id,
                reason=result.reason,
                error=str(result),
            )
            return Outcome(message.delivery_id, result, provider_id=self.message_id(message))
        return Outcome.sent(
            message.delivery_id, provider_id=self.message_id(message), detail=str(result)
        )
