""":class:`MemoryChannel`: a channel that keeps what it is given, for apps' own tests.

Register it as a channel of its own, or in place of one of ours with
:meth:`MemoryChannel.standing_in_for`::

    from dispatcher import Dispatcher
    from dispatcher.channels import default_channels
    from dispatcher.channels.email.channel import EmailChannel
    from dispatcher.channels.memory import MemoryChannel

    email = MemoryChannel.standing_in_for(EmailChannel)
    d = Dispatcher(channels={**default_channels(), "email": email})
    ...  # notify, then run delivery in this process (dispatcher.worker.Runtime(d))
    d.channels.get("email").sent  # the rendered messages, in order

Messages live in the channel instance, so this is for tests that deliver in the
process that reads them, as ``StubBroker`` is for dramatiq's users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from dispatcher.channels.base import Channel, ChannelContext, Message, Outcome
from dispatcher.subscribers.recipient import Recipient

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dispatcher.catalog import NotificationType


class MemoryChannel(Channel):
    """Accepts every message and appends it to :attr:`sent`."""

    name: ClassVar[str] = "memory"
    parts: ClassVar[tuple[str, ...]] = ("title", "body")
    optional_parts: ClassVar[tuple[str, ...]] = ()
    #: The channel this one stands in for (see :meth:`standing_in_for`), if any.
    stands_in_for: ClassVar[type[Channel] | None] = None

    def __init__(self, context: ChannelContext) -> None:
        super().__init__(context)
        #: Every message sent through this instance, oldest first.
        self.sent: list[Message] = []
        # Who is reachable and what templates see are the real channel's answers; only
        # sending is replaced.
        self._real = self.stands_in_for(context) if self.stands_in_for else None

    @classmethod
    def standing_in_for(cls, channel: type[Channel]) -> type[MemoryChannel]:
        """A memory channel with ``channel``'s name, template parts and address kind,
        that asks an instance of ``channel`` who is reachable and what its templates
        see, so the same subscribers get the same rendered messages; it never sends."""
        return type(
            f"Memory{channel.__name__}",
            (cls,),
            {
                "name": channel.name,
                "parts": channel.parts,
                "optional_parts": channel.optional_parts,
                "address_kind": channel.address_kind,
                "stores_silently": channel.stores_silently,
                "stands_in_for": channel,
                "__module__": cls.__module__,
            },
        )

    def missing_addresses(self, recipients: Sequence[Recipient], session: Session) -> set[int]:
        if self._real is not None:
            return self._real.missing_addresses(recipients, session)
        return super().missing_addresses(recipients, session)

    def template_context(
        self, recipient: Recipient, type: NotificationType, notification_id: int
    ) -> Mapping[str, Any]:
        if self._real is not None:
            return self._real.template_context(recipient, type, notification_id)
        return {}

    async def close(self) -> None:
        if self._real is not None:
            await self._real.close()

    async def send(self, messages: Sequence[Message]) -> Sequence[Outcome]:
        self.sent.extend(messages)
        return [
            Outcome.sent(m.delivery_id, provider_id=f"memory-{m.delivery_id}") for m in messages
        ]

    def clear(self) -> None:
        """Forget what was sent."""
        self.sent.clear()
