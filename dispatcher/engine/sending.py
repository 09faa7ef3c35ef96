"""Sending a claimed batch through a channel a group at a time, recording as it goes.

A group is as many messages as the channel has on the wire at once (its
:attr:`~dispatcher.channels.base.Channel.in_flight`, or ``DISPATCHER_RECORD_GROUP_SIZE``).
Each group's outcomes are written as soon as the provider answered, only where the
claim still holds (:mod:`dispatcher.engine.claim`), so a process killed mid-batch
leaves at most one group sent but unrecorded. Between groups the claim's lease is
renewed (every quarter lease, or at once when a write was refused); rows whose claim
was taken back are not sent: their new holder sends them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from dispatcher import log
from dispatcher.channels.base import Channel, Message, Outcome
from dispatcher.channels.runtime import ChannelRuntime
from dispatcher.db.engine import Store
from dispatcher.engine.claim import renew
from dispatcher.engine.records import Record, record_for_outcome, write_records
from dispatcher.errors import TransientDeliveryError


class GroupSender:
    """Sends and records claimed messages for one process's deliverer."""

    def __init__(
        self, store: Store, channels: ChannelRuntime, lease: timedelta, group_size: int = 0
    ) -> None:
        self.store = store
        self.channels = channels
        self.lease = lease
        #: 0: the channel's in-flight count.
        self.group_size = group_size

    def send(
        self, channel: Channel, messages: Sequence[Message], now: datetime, token: str | None
    ) -> list[Record]:
        """Send ``messages`` a group at a time, record each group's outcomes as they come
        back, and renew the claim between groups; return the records written."""
        size = self.group_size or max(1, channel.in_flight)
        channel.begin_batch()
        try:
            return self._send_groups(channel, list(messages), now, token, size)
        finally:
            channel.end_batch()

    def _send_groups(
        self,
        channel: Channel,
        remaining: list[Message],
        now: datetime,
        token: str | None,
        size: int,
    ) -> list[Record]:
        recorded: list[Record] = []
        started = renewed = time.monotonic()
        groups = 0
        while remaining:
            # The first group is recorded at the batch's clock (``now``, which tests may
            # freeze); later ones at that clock plus the time spent sending so far.
            at = now + timedelta(seconds=time.monotonic() - started) if groups else now
            groups += 1
            if token is not None and time.monotonic() - renewed > self.lease.total_seconds() / 4:
                remaining = self._still_held(remaining, token, at)
                renewed = time.monotonic()
                if not remaining:
                    break
            group, remaining = remaining[:size], remaining[size:]
            records = outcome_records(channel, group, self._send_group(channel, group), at)
            written = write_records(self.store, records, at, token=token)
            recorded.extend(written)
            if len(written) < len(records):
                renewed = float("-inf")  # the claim was taken back: check the rest now
        return recorded

    def _send_group(self, channel: Channel, messages: Sequence[Message]) -> Iterable[Outcome]:
        try:
            self.channels.open(channel)
            return self.channels.run(channel.send(messages))
        except Exception as exc:  # the whole group failed; each message is retried
            log.error(
                "delivery.batch_failed",
                channel=channel.name,
                count=len(messages),
                first_delivery_id=messages[0].delivery_id,
                error=type(exc).__name__,
            )
            error = TransientDeliveryError(f"{type(exc).__name__}: {exc}", reason="channel_error")
            return [Outcome.failed(m.delivery_id, error) for m in messages]

    def _still_held(self, messages: Sequence[Message], token: str, now: datetime) -> list[Message]:
        """Renew the claim on ``messages``; keep those this process still holds."""
        with self.store.session(write=True) as session:
            held = set(
                renew(session, [m.delivery_id for m in messages], token, now=now, lease=self.lease)
            )
        if len(held) < len(messages):
            log.warning(
                "delivery.claim_lost",
                stopped=len(messages) - len(held),
                first_delivery_id=messages[0].delivery_id,
            )
        return [m for m in messages if m.delivery_id in held]


def outcome_records(
    channel: Channel,
    messages: Sequence[Message],
    outcomes: Iterable[Outcome],
    now: datetime,
) -> list[Record]:
    """The new state of each of ``messages`` after ``channel`` reported ``outcomes``."""
    records: list[Record] = []
    attempts = {m.delivery_id: m.attempt for m in messages}
    seen: set[int] = set()
    for outcome in outcomes:
        seen.add(outcome.delivery_id)
        records.append(
            record_for_outcome(outcome, attempts[outcome.delivery_id], channel.retry_policy, now)
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
