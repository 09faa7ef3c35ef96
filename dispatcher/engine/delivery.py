"""Delivering: claim rows, decide, render, send through the channel, record the outcome.

Every path ends in a recorded status, written only while this process still holds the
claim (see :mod:`dispatcher.engine.claim`). Sends are recorded a group at a time (as
many messages as the channel has on the wire), and the claim's lease is renewed
between groups, so a long batch keeps its rows, a killed one leaves at most a group
sent but unrecorded, and one whose rows were taken back stops sending them.

Sent rows get ``sent``; decisions not to send get ``skipped`` or ``scheduled`` with a
reason; failures are retried with back-off in ``scheduled_for`` until the channel's
attempts run out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.catalog import Catalog
from dispatcher.channels.base import Channel, Message
from dispatcher.channels.runtime import ChannelRuntime
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Campaign, Delivery, Event, Notification, Subscriber, table
from dispatcher.engine.claim import Ticket, claim
from dispatcher.engine.compose import Composer, Row
from dispatcher.engine.liveness import Liveness
from dispatcher.engine.records import Record, write_records, write_records_in
from dispatcher.engine.sending import GroupSender, outcome_records
from dispatcher.enums import DeliveryStatus, Priority, Reason
from dispatcher.errors import UnknownEventTypeError
from dispatcher.policies.base import Candidate, Decision, PolicyChain
from dispatcher.subscribers.recipient import Recipient
from dispatcher.templating.renderer import Renderer


@dataclass
class DeliverReport:
    """What one batch did: counts by new status, and what an operator watching the
    task must see (failures by reason, retries and when the first one is due)."""

    claimed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    #: Deliveries that failed for good, by reason.
    failed: dict[str, int] = field(default_factory=dict)
    #: Deliveries whose attempt failed transiently, by the error's reason, and the
    #: earliest time one of them is tried again.
    retrying: dict[str, int] = field(default_factory=dict)
    next_retry: datetime | None = None

    def add(self, status: DeliveryStatus) -> None:
        self.counts[status.value] = self.counts.get(status.value, 0) + 1

    def note(self, record: Record) -> None:
        """Count ``record``'s outcome."""
        self.add(record.status)
        if record.status is DeliveryStatus.FAILED:
            reason = record.reason or "unknown"
            self.failed[reason] = self.failed.get(reason, 0) + 1
        elif record.status is DeliveryStatus.SCHEDULED and record.reason == Reason.RETRYING:
            # The detail starts with the transient error's reason code (never its text:
            # a provider's message may quote an address).
            why = (record.detail or "").split(":", 1)[0] or "unknown"
            self.retrying[why] = self.retrying.get(why, 0) + 1
            due = record.scheduled_for
            if due is not None and (self.next_retry is None or due < self.next_retry):
                self.next_retry = due

    def merge(self, other: DeliverReport) -> None:
        """Add ``other``'s counts to this report."""
        self.claimed += other.claimed
        for mine, theirs in (
            (self.counts, other.counts),
            (self.failed, other.failed),
            (self.retrying, other.retrying),
        ):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
        if other.next_retry is not None and (
            self.next_retry is None or other.next_retry < self.next_retry
        ):
            self.next_retry = other.next_retry


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
    #: The claim: its writes count only while the rows carry its token.
    ticket: Ticket | None = None


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
    #: The content key of a campaign with its own templates (None: the type's).
    content: str | None = None


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
#: What delivering needs to know of a recipient (:meth:`Deliverer._recipient` reads these).
RECIPIENT_COLUMNS = (
    _S.c.id.label("subscriber_id"),
    _S.c.external_id,
    _S.c.email,
    _S.c.attributes,
    _S.c.locale,
    _S.c.timezone,
)
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
        *RECIPIENT_COLUMNS,
    )
    .join(_N, _N.c.id == _D.c.notification_id)
    .join(_S, _S.c.id == _N.c.subscriber_id)
    .where(_D.c.id.in_(bindparam("ids", expanding=True)))
)
_C = table(Campaign)
_LOAD_PAYLOADS = (
    select(_E.c.id, _E.c.payload, _E.c.actor, _C.c.content)
    .outerjoin(_C, _C.c.id == _E.c.campaign_id)
    .where(_E.c.id.in_(bindparam("ids", expanding=True)))
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
        liveness: Liveness | None = None,
        record_group_size: int = 0,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.composer = Composer(renderer, context_extras)
        self.channels = channels
        self.policies = policies
        self.lease = lease
        self.default_locale = default_locale
        self.liveness = liveness
        self.sender = GroupSender(store, channels, lease, record_group_size)
        #: PostgreSQL: the policies' data, loaded with each recipient's row.
        self.preloads = policies.preloads(_S.c.id) if store.is_postgres else []
        self._load_rows = _LOAD_ROWS.add_columns(*self.preloads)
        #: For fan-out's inline events: what delivering needs to know of each recipient,
        #: by external id.
        self.subscriber_rows = select(*RECIPIENT_COLUMNS, *self.preloads).where(
            _S.c.external_id.in_(bindparam("external_ids", expanding=True))
        )

    def ticket(self) -> Ticket:
        """A new claim for this process (whose liveness key is alive from now on)."""
        if self.liveness is not None:
            return Ticket(owner=self.liveness.beat())
        return Ticket()

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
        batch = Batch(ticket=self.ticket())
        claimed = claim(session, delivery_ids, now=now, lease=self.lease, ticket=batch.ticket)
        batch.claimed = len(claimed)
        if not claimed:
            return batch
        rows, early = self._load(session, claimed)
        batch.records.extend(early)
        self._decide(session, batch, rows, now)
        return batch

    def prepare_claimed(
        self,
        session: Session,
        deliveries: Sequence[NewDelivery],
        now: datetime,
        ticket: Ticket | None = None,
    ) -> Batch:
        """:meth:`prepare` for first attempts that fan-out has just inserted already
        claimed in ``session`` with ``ticket`` (of one event or several): what
        :meth:`prepare` would load is in hand."""
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
                    preloaded=PolicyChain.preloaded(d.subscriber, self.preloads),
                ),
                d.event.id,
                d.event.payload,
                d.event.created_at,
                d.event.actor,
                d.event.content,
            )
            for d in deliveries
        ]
        batch = Batch(claimed=len(rows), ticket=ticket)
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
                token = batch.ticket.token if batch.ticket else None
                records, messages = self._store(session, channel, reachable, decisions, now, token)
                batch.records.extend(records)
                if messages:
                    batch.announcements.append((channel, messages))
            else:
                batch.sends.append((channel, reachable, decisions))

    def send(self, batch: Batch, now: datetime) -> DeliverReport:
        """Send a committed :class:`Batch` through its channels and record the outcomes."""
        try:
            return self._send(batch, now)
        except Exception:
            # Half sent, and the rest cannot be recorded (say the database went away):
            # nobody works on these claims any more. Let the sweep have them now.
            if self.liveness is not None and batch.ticket is not None and batch.ticket.owner:
                self.liveness.retire(batch.ticket.owner)
            raise

    def _send(self, batch: Batch, now: datetime) -> DeliverReport:
        report = DeliverReport(claimed=batch.claimed)
        token = batch.ticket.token if batch.ticket else None
        for channel, messages in batch.announcements:
            self._announce(channel, messages)
        records = [r for r in batch.records if r.written]
        records += write_records(
            self.store, [r for r in batch.records if not r.written], now, token=token
        )
        for channel, channel_rows, decisions in batch.sends:
            early, messages = self.composer.messages(channel, channel_rows, decisions)
            records += write_records(self.store, early, now, token=token)
            records += self.sender.send(channel, messages, now, token)
        for rec in records:
            report.note(rec)
        return report

    def _load(self, session: Session, ids: Sequence[int]) -> tuple[list[Row], list[Record]]:
        # Plain columns, not ORM entities: a batch is hundreds of rows and identity-map
        # bookkeeping would cost more than the query. Payloads are loaded once per event.
        conn = session.connection()
        found = conn.execute(self._load_rows, {"ids": list(ids)}).all()
        event_ids = list({r.event_id for r in found})
        payloads: dict[int, dict[str, Any]] = {}
        actors: dict[int, str | None] = {}
        contents: dict[int, str | None] = {}
        for event_id, payload, actor, content in conn.execute(_LOAD_PAYLOADS, {"ids": event_ids}):
            payloads[event_id] = payload
            actors[event_id] = actor
            contents[event_id] = content
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
                preloaded=PolicyChain.preloaded(delivery, self.preloads),
            )
            rows.append(
                Row(
                    candidate,
                    delivery.event_id,
                    payloads[delivery.event_id],
                    delivery.created_at,
                    actors[delivery.event_id],
                    contents[delivery.event_id],
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
        token: str | None,
    ) -> tuple[list[Record], list[Message]]:
        """For a channel that stores in a transaction: render, store and record the
        whole batch in ``session``; return its records (all written) and the messages
        to announce after the commit."""
        records, messages = self.composer.messages(channel, rows, decisions)
        if messages:
            outcomes = channel.store(session, messages)
            records.extend(outcome_records(channel, messages, outcomes, now))
        written = write_records_in(session, [r for r in records if not r.written], now, token=token)
        kept = {r.delivery_id for r in written}
        records = [r for r in records if r.written or r.delivery_id in kept]
        messages = [m for m in messages if m.delivery_id in kept]
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
