"""Delivering: claim rows, decide, render, send through the channel, record the outcome.

Every path ends in a recorded status. Sent rows get ``sent``; decisions not to send get
``skipped`` or ``scheduled`` with a reason; failures are retried with back-off in
``scheduled_for`` until the channel's attempts run out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.catalog import Catalog
from dispatcher.channels.base import Channel, Message, Outcome
from dispatcher.channels.runtime import ChannelRuntime
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Delivery, Event, Notification, Subscriber, table
from dispatcher.engine.claim import claim
from dispatcher.engine.compose import Composer, Row
from dispatcher.engine.records import Record, record_for_outcome, write_records, write_records_in
from dispatcher.enums import DeliveryStatus, Priority, Reason
from dispatcher.errors import TransientDeliveryError, UnknownEventTypeError
from dispatcher.policies.base import Candidate, Decision, PolicyChain
from dispatcher.subscribers.recipient import Recipient
from dispatcher.templating.renderer import Renderer


@dataclass
class DeliverReport:
    claimed: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, status: DeliveryStatus) -> None:
        self.counts[status.value] = self.counts.get(status.value, 0) + 1


@dataclass
class Batch:
    """Claimed deliveries with their decisions, between :meth:`Deliverer.prepare` (in a
    transaction) and :meth:`Deliverer.send` (after it committed)."""

    claimed: int = 0
    #: Deliveries settled in the transaction (skipped, rescheduled, stored in-app).
    records: list[Record] = field(default_factory=list)
    #: Channels that send after the commit, with what to send.
    sends: list[tuple[Channel, list[Row], dict[int, Decision]]] = field(default_factory=list)
    #: Channels that stored in the transaction, with what to announce after it.
    announcements: list[tuple[Channel, list[Message]]] = field(default_factory=list)


@dataclass(frozen=True)
class EventFacts:
    """What delivering needs of an event, when the caller has it in hand (fan-out)."""

    id: int
    type: str
    payload: Mapping[str, Any]
    priority: Priority
    #: The notifications' ``created_at``.
    created_at: datetime
    actor: str | None = None


@dataclass(frozen=True)
class NewDelivery:
    """A delivery that fan-out inserted already claimed (its first attempt)."""

    event: EventFacts
    delivery_id: int
    notification_id: int
    channel: str
    #: A row with ``subscriber_id``, ``external_id``, ``email``, ``locale``, ``timezone``.
    subscriber: Any


_D = table(Delivery)
_N = table(Notification)
_S = table(Subscriber)
_E = table(Event)
#: Built once: constructing a statement costs more than running it on SQLite.
_LOAD_ROWS = (
    select(
        _D.c.id,
        _D.c.channel,
        _D.c.priority,
        _D.c.attempts,
        _N.c.id.label("notification_id"),
        _N.c.type,
        _N.c.event_id,
        _N.c.created_at,
        _S.c.id.label("subscriber_id"),
        _S.c.external_id,
        _S.c.email,
        _S.c.attributes,
        _S.c.locale,
        _S.c.timezone,
    )
    .join(_N, _N.c.id == _D.c.notification_id)
    .join(_S, _S.c.id == _N.c.subscriber_id)
    .where(_D.c.id.in_(bindparam("ids", expanding=True)))
)
_LOAD_PAYLOADS = select(_E.c.id, _E.c.payload, _E.c.actor).where(
    _E.c.id.in_(bindparam("ids", expanding=True))
)


class Deliverer:
    """Runs :func:`deliver` for one process: store, catalog, renderer, channels, policies."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        renderer: Renderer,
        channels: ChannelRuntime,
        policies: PolicyChain,
        *,
        lease: timedelta,
        default_locale: str = "en",
        context_extras: Mapping[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.composer = Composer(renderer, context_extras)
        self.channels = channels
        self.policies = policies
        self.lease = lease
        self.default_locale = default_locale

    def deliver(self, delivery_ids: Sequence[int], *, now: datetime | None = None) -> DeliverReport:
        """Claim and send those of ``delivery_ids`` that are due; safe to call twice."""
        now = now or utcnow()
        # Claim, load and decide in one transaction: the claim is its first statement
        # (so SQLite takes the write lock at once), and if a policy fails the claim is
        # rolled back instead of waiting out its lease.
        with self.store.session(write=True) as session:
            batch = self.prepare(session, delivery_ids, now)
        return self.send(batch, now)

    def prepare(self, session: Session, delivery_ids: Sequence[int], now: datetime) -> Batch:
        """Claim ``delivery_ids`` in ``session`` and decide what to do with each.

        The claims take effect when the caller commits ``session``; call :meth:`send`
        only after that. Fan-out calls this in its own transaction, so a small event is
        stored, claimed and decided in one commit.
        """
        batch = Batch()
        claimed = claim(session, delivery_ids, now=now, lease=self.lease)
        batch.claimed = len(claimed)
        if not claimed:
            return batch
        rows, early = self._load(session, claimed)
        batch.records.extend(early)
        self._decide(session, batch, rows, now)
        return batch

    def prepare_claimed(
        self, session: Session, deliveries: Sequence[NewDelivery], now: datetime
    ) -> Batch:
        """:meth:`prepare` for first attempts that fan-out has just inserted already
        claimed in ``session`` (of one event or several): what :meth:`prepare` would
        load is in hand."""
        rows = [
            Row(
                Candidate(
                    delivery_id=d.delivery_id,
                    notification_id=d.notification_id,
                    channel=d.channel,
                    type=self.catalog.get(d.event.type),
                    priority=d.event.priority,
                    recipient=self._recipient(d.subscriber),
                    attempt=1,
                    stores_silently=self._stores_silently(d.channel),
                ),
                d.event.id,
                d.event.payload,
                d.event.created_at,
                d.event.actor,
            )
            for d in deliveries
        ]
        batch = Batch(claimed=len(rows))
        self._decide(session, batch, rows, now)
        return batch

    def _recipient(self, subscriber: Any) -> Recipient:
        """A recipient from a row with the subscriber's columns."""
        return Recipient.from_columns(
            id=subscriber.subscriber_id,
            external_id=subscriber.external_id,
            locale=subscriber.locale or self.default_locale,
            timezone=subscriber.timezone,
            email=subscriber.email,
            attributes=subscriber.attributes,
        )

    def _stores_silently(self, name: str) -> bool:
        channel = self.channels.get(name)
        return channel is not None and channel.stores_silently

    def _decide(self, session: Session, batch: Batch, rows: Sequence[Row], now: datetime) -> None:
        by_channel: dict[str, list[Row]] = {}
        for row in rows:
            by_channel.setdefault(row.candidate.channel, []).append(row)
        for name, channel_rows in by_channel.items():
            channel = self.channels.get(name)
            if channel is None or not channel.is_configured():
                batch.records.extend(
                    Record(
                        r.candidate.delivery_id,
                        DeliveryStatus.SKIPPED,
                        Reason.CHANNEL_NOT_CONFIGURED,
                        f"channel {name!r} has no provider configured",
                    )
                    for r in channel_rows
                )
                continue
            missing = channel.missing_addresses(
                [r.candidate.recipient for r in channel_rows], session
            )
            reachable = []
            for r in channel_rows:
                if r.candidate.recipient.id in missing:
                    batch.records.append(
                        Record(
                            r.candidate.delivery_id,
                            DeliveryStatus.SKIPPED,
                            Reason.NO_ADDRESS,
                            f"subscriber has no {name} address",
                        )
                    )
                else:
                    reachable.append(r)
            decisions = self.policies.decide(session, [r.candidate for r in reachable], now)
            if channel.stores_in_transaction:
                records, messages = self._store(session, channel, reachable, decisions, now)
                batch.records.extend(records)
                if messages:
                    batch.announcements.append((channel, messages))
            else:
                batch.sends.append((channel, reachable, decisions))

    def send(self, batch: Batch, now: datetime) -> DeliverReport:
        """Send a committed :class:`Batch` through its channels and record the outcomes."""
        report = DeliverReport(claimed=batch.claimed)
        records = list(batch.records)
        for channel, messages in batch.announcements:
            self._announce(channel, messages)
        for channel, channel_rows, decisions in batch.sends:
            records.extend(self._send(channel, channel_rows, decisions, now))
        write_records(self.store, [r for r in records if not r.written], now)
        for rec in records:
            report.add(rec.status)
        return report

    def _load(self, session: Session, ids: Sequence[int]) -> tuple[list[Row], list[Record]]:
        # Plain columns, not ORM entities: a batch is hundreds of rows and identity-map
        # bookkeeping would cost more than the query. Payloads are loaded once per event.
        conn = session.connection()
        found = conn.execute(_LOAD_ROWS, {"ids": list(ids)}).all()
        event_ids = list({r.event_id for r in found})
        payloads: dict[int, dict[str, Any]] = {}
        actors: dict[int, str | None] = {}
        for event_id, payload, actor in conn.execute(_LOAD_PAYLOADS, {"ids": event_ids}):
            payloads[event_id] = payload
            actors[event_id] = actor
        rows: list[Row] = []
        early: list[Record] = []
        for delivery in found:
            try:
                notification_type = self.catalog.get(delivery.type)
            except UnknownEventTypeError as exc:
                # The worker lacks the app's type module: retry once it is deployed.
                early.append(
                    Record(
                        delivery.id,
                        DeliveryStatus.SCHEDULED,
                        Reason.RETRYING,
                        str(exc),
                        scheduled_for=utcnow() + timedelta(minutes=5),
                    )
                )
                continue
            recipient = self._recipient(delivery)
            candidate = Candidate(
                delivery_id=delivery.id,
                notification_id=delivery.notification_id,
                channel=delivery.channel,
                type=notification_type,
                priority=delivery.priority,
                recipient=recipient,
                attempt=delivery.attempts,
                stores_silently=self._stores_silently(delivery.channel),
            )
            rows.append(
                Row(
                    candidate,
                    delivery.event_id,
                    payloads[delivery.event_id],
                    delivery.created_at,
                    actors[delivery.event_id],
                )
            )
        return rows, early

    def _store(
        self,
        session: Session,
        channel: Channel,
        rows: Sequence[Row],
        decisions: Mapping[int, Decision],
        now: datetime,
    ) -> tuple[list[Record], list[Message]]:
        """For a channel that stores in a transaction: render, store and record the
        whole batch in ``session``; return its records (all written) and the messages
        to announce after the commit."""
        records, messages = self.composer.messages(channel, rows, decisions)
        if messages:
            outcomes = channel.store(session, messages)
            records.extend(self._records(channel, messages, outcomes, now))
        write_records_in(session, [r for r in records if not r.written], now)
        for r in records:
            r.written = True
        return records, messages

    def _announce(self, channel: Channel, messages: Sequence[Message]) -> None:
        try:
            channel.announce(messages)
        except Exception as exc:  # stored is delivered; clients catch up on reconnect
            log.warning(
                "delivery.announce_failed",
                channel=channel.name,
                count=len(messages),
                first_delivery_id=messages[0].delivery_id,
                error=type(exc).__name__,
            )

    def _send(
        self,
        channel: Channel,
        rows: Sequence[Row],
        decisions: Mapping[int, Decision],
        now: datetime,
    ) -> list[Record]:
        records, messages = self.composer.messages(channel, rows, decisions)
        if not messages:
            return records
        try:
            self.channels.open(channel)
            outcomes: Iterable[Outcome] = self.channels.run(channel.send(messages))
        except Exception as exc:  # the whole batch failed; each message is retried
            log.error(
                "delivery.batch_failed",
                channel=channel.name,
                count=len(messages),
                first_delivery_id=messages[0].delivery_id,
                error=type(exc).__name__,
            )
            error = TransientDeliveryError(f"{type(exc).__name__}: {exc}", reason="channel_error")
            outcomes = [Outcome.failed(m.delivery_id, error) for m in messages]
        return records + self._records(channel, messages, outcomes, now)

    def _records(
        self,
        channel: Channel,
        messages: Sequence[Message],
        outcomes: Iterable[Outcome],
        now: datetime,
    ) -> list[Record]:
        records: list[Record] = []
        attempts = {m.delivery_id: m.attempt for m in messages}
        seen: set[int] = set()
        for outcome in outcomes:
            seen.add(outcome.delivery_id)
            records.append(
                record_for_outcome(
                    outcome, attempts[outcome.delivery_id], channel.retry_policy, now
                )
            )
        for m in messages:
            if m.delivery_id not in seen:  # a channel that forgot a message must not lose it
                error = TransientDeliveryError("channel returned no outcome", reason="no_outcome")
                records.append(
                    record_for_outcome(
                        Outcome.failed(m.delivery_id, error), m.attempt, channel.retry_policy, now
                    )
                )
        return records
