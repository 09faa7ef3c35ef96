"""Send-time decisions: should this delivery go now, later, or not at all?

Each :class:`Policy` looks at a batch of claimed deliveries and returns a
:class:`Decision` for those it has an opinion on; the first policy that does not say
"send" wins. Policies run when a delivery is about to be sent, never at fan-out, so a
preference changed after the event is honoured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Label
from sqlalchemy.orm import Session

from dispatcher.catalog import NotificationType
from dispatcher.enums import Priority, Reason
from dispatcher.settings import Settings
from dispatcher.subscribers.recipient import Recipient


class Action(StrEnum):
    #: Send now.
    SEND = "send"
    #: Never send; record ``reason``.
    SKIP = "skip"
    #: Send at ``until``; record ``reason``.
    DEFER = "defer"


@dataclass(frozen=True)
class DigestEntry:
    """One delivery gathered into a digest, as its template lists it."""

    delivery_id: int
    notification_id: int
    type: str
    data: Mapping[str, Any]
    #: When its notification was created (UTC; the template sees the reader's zone).
    created_at: datetime


@dataclass(frozen=True)
class Digest:
    """What a delivery that carries a digest sends: its window and every entry, oldest
    first."""

    window_id: int
    opened_at: datetime
    closes_at: datetime
    entries: tuple[DigestEntry, ...]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: Reason | None = None
    detail: str | None = None
    until: datetime | None = None
    #: For in-app during quiet hours: store without a real-time ping.
    realtime: bool = True
    #: Send this delivery as the digest of a window (rendered from its digest templates).
    digest: Digest | None = None

    @classmethod
    def send(
        cls, *, realtime: bool = True, detail: str | None = None, digest: Digest | None = None
    ) -> Decision:
        return cls(Action.SEND, realtime=realtime, detail=detail, digest=digest)

    @classmethod
    def skip(cls, reason: Reason, detail: str | None = None) -> Decision:
        return cls(Action.SKIP, reason, detail)

    @classmethod
    def defer(cls, until: datetime, reason: Reason, detail: str | None = None) -> Decision:
        return cls(Action.DEFER, reason, detail, until)


SEND = Decision.send()


@dataclass(frozen=True)
class Candidate:
    """A claimed delivery as policies see it."""

    delivery_id: int
    notification_id: int
    channel: str
    type: NotificationType
    priority: Priority
    recipient: Recipient
    attempt: int
    #: The channel can deliver without disturbing (``Channel.stores_silently``):
    #: quiet hours silence it instead of deferring it.
    stores_silently: bool = False
    #: What each policy's :meth:`Policy.preload` loaded with the recipient's row, by
    #: policy name (None: nothing was, and each policy loads its own).
    preloaded: Mapping[str, Any] | None = None


class Policy:
    """One send-time rule. Subclasses implement :meth:`decide`; :meth:`setup` and
    :meth:`close` are optional hooks around a worker process's life."""

    #: Short name shown in logs.
    name: str = "policy"

    def setup(self, settings: Settings) -> None:
        """Called once per process before the first decision (open clients here)."""

    def close(self) -> None:
        """Called when the process is done with the policy."""

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        """Return decisions keyed by delivery id; omit deliveries that may be sent."""
        raise NotImplementedError

    def preload(self, subscriber_id: ColumnElement[int]) -> ColumnElement[Any] | None:
        """PostgreSQL: an expression of this policy's data for the subscriber whose
        primary key is ``subscriber_id`` (a correlated subquery), which the engine loads
        in the same statement as the subscriber's row: one round trip less per batch.
        :meth:`decide` then finds its value in ``Candidate.preloaded[self.name]``. None
        (the default): the policy loads what it needs itself."""
        return None

    def preloaded_for(self, candidates: Sequence[Candidate]) -> tuple[dict[int, Any], list[int]]:
        """What :meth:`preload` brought for each candidate's recipient (by subscriber
        primary key; None where they have no rows), and the recipients that came without
        it, whose data the policy looks up itself."""
        known: dict[int, Any] = {}
        unknown: list[int] = []
        for c in candidates:
            if c.preloaded is not None and self.name in c.preloaded:
                known[c.recipient.id] = c.preloaded[self.name]
            else:
                unknown.append(c.recipient.id)
        return known, unknown


class PolicyChain:
    """Applies policies in order; the first non-send decision for a delivery wins.

    A ``send`` decision that only turns the real-time ping off is remembered and
    applied if no later policy holds the delivery back.
    """

    def __init__(self, policies: Sequence[Policy] = ()) -> None:
        self.policies = list(policies)

    def preloads(self, subscriber_id: ColumnElement[int]) -> list[Label[Any]]:
        """The policies' :meth:`Policy.preload` expressions, labelled ``preload_<name>``
        (PostgreSQL only)."""
        found = ((p.name, p.preload(subscriber_id)) for p in self.policies)
        return [expr.label(f"preload_{name}") for name, expr in found if expr is not None]

    @staticmethod
    def preloaded(row: Any, preloads: Sequence[Label[Any]]) -> dict[str, Any] | None:
        """``Candidate.preloaded`` from a row with the :meth:`preloads` columns; None
        for a row loaded without them (a campaign's members), whose policies look
        their data up themselves."""
        fields = getattr(row, "_fields", ())
        if not preloads or any(label.name not in fields for label in preloads):
            return None
        return {label.name.removeprefix("preload_"): getattr(row, label.name) for label in preloads}

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        decided: dict[int, Decision] = {}
        quiet: dict[int, Decision] = {}
        remaining = list(candidates)
        digests: dict[int, Digest] = {}
        for policy in self.policies:
            if not remaining:
                break
            for delivery_id, decision in policy.decide(session, remaining, now).items():
                if decision.action is Action.SEND:
                    if decision.digest is not None:
                        digests[delivery_id] = decision.digest
                    if not decision.realtime:
                        quiet[delivery_id] = decision
                else:
                    decided[delivery_id] = decision
            remaining = [c for c in remaining if c.delivery_id not in decided]
        for c in remaining:
            decision = quiet.get(c.delivery_id, SEND)
            if c.delivery_id in digests:
                decision = replace(decision, digest=digests[c.delivery_id])
            decided[c.delivery_id] = decision
        return decided
