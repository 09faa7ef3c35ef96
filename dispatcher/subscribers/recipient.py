"""The :class:`Recipient`: what a channel may know about the person it delivers to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The address kind stored in the subscriber's own ``email`` column; every other kind
#: (``phone``, ``slack_user``, ...) is the string attribute of that name.
EMAIL = "email"


@dataclass(frozen=True)
class Recipient:
    """One subscriber as a delivery sees them.

    A channel asks for its address by kind (:attr:`Channel.address_kind`), so a new
    channel needs no new field here: ``subscribers.upsert("u1", phone="+34600000000")``
    gives an SMS channel whose ``address_kind`` is ``"phone"`` its address.
    """

    id: int
    external_id: str
    locale: str
    timezone: str
    #: Addresses by kind, only those the subscriber has.
    addresses: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_columns(
        cls,
        *,
        id: int,
        external_id: str,
        locale: str,
        timezone: str,
        email: str | None,
        attributes: Mapping[str, Any] | None,
    ) -> Recipient:
        """A recipient from a subscriber row: its email column plus its string attributes."""
        addresses = {k: v for k, v in (attributes or {}).items() if isinstance(v, str) and v}
        if email:
            addresses[EMAIL] = email
        else:
            addresses.pop(EMAIL, None)
        return cls(id, external_id, locale, timezone, addresses)

    def address(self, kind: str) -> str | None:
        """The subscriber's address of ``kind``, or None if they have none."""
        return self.addresses.get(kind)

    @property
    def email(self) -> str | None:
        """Shorthand for ``address("email")``."""
        return self.addresses.get(EMAIL)
