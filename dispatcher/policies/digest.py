"""Digests: deliveries of a type gathered per subscriber and channel over a window and
sent as one message listing them all.

A type declares which channels it digests and for how long
(``NotificationType.digest = {"email": timedelta(minutes=15)}``). When a delivery of a
digested type and channel is about to be sent, and it is not ``urgent``:

* if the subscriber has no **open window** for (type, channel), one is opened with
  ``closes_at = now + window``; the delivery is the window's first item and becomes its
  **carrier**: deferred to ``closes_at`` with reason ``digest`` (``opens digest window
  N``);
* otherwise it joins the open window and is skipped with reason ``digest`` (``in digest
  window N, sent with delivery M``): it is listed in the digest, never sent alone.

When the carrier is claimed at or after ``closes_at`` (beat's ``dispatcher.flush_digests``
or the sweep), this policy closes the window (``open`` → ``flushed``, a conditional
update in the claim's transaction) and lets the carrier go as the digest, with every
item on the decision. The digest is an ordinary delivery: it is claimed, fenced, sent
and recorded like any other, and earlier policies still apply to it (quiet hours defer
it, and the window keeps gathering meanwhile). Exactly once comes from the database: one
open window per (subscriber, type, channel) (a partial unique index), one carrier per
window (a unique column), the window closed in the carrier's claim transaction (rolled
back with it), and a re-claimed carrier of a flushed window sends the same list again.

A window whose carrier was skipped (the subscriber opted out meanwhile, no address) is
``dropped`` with its items. This policy runs after collapse and before rate limits, so a
held item uses no rate-limit slot; the digest uses one.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dispatcher.db.models import Delivery, DigestItem, DigestWindow, Event, Notification, table
from dispatcher.enums import DeliveryStatus, Priority, Reason
from dispatcher.policies.base import Candidate, Decision, Digest, DigestEntry, Policy

OPEN = "open"
FLUSHED = "flushed"
DROPPED = "dropped"

_W = table(DigestWindow)
_I = table(DigestItem)
_D = table(Delivery)
_N = table(Notification)
_E = table(Event)
_FINAL = [s for s in DeliveryStatus if s.is_final]


def entries(session: Session, window_id: int) -> tuple[DigestEntry, ...]:
    """The window's items, oldest first."""
    rows = session.execute(
        select(_I.c.delivery_id, _N.c.id, _N.c.type, _N.c.created_at, _E.c.payload)
        .join(_D, _D.c.id == _I.c.delivery_id)
        .join(_N, _N.c.id == _D.c.notification_id)
        .join(_E, _E.c.id == _N.c.event_id)
        .where(_I.c.window_id == window_id)
        .order_by(_N.c.created_at, _I.c.delivery_id)
    ).all()
    return tuple(DigestEntry(r[0], r[1], r[2], r[4], r[3]) for r in rows)


def digest_of(session: Session, window: Any) -> Digest:
    return Digest(window.id, window.opened_at, window.closes_at, entries(session, window.id))


def drop_dead(session: Session, now: datetime, window_id: int | None = None) -> int:
    """Mark ``dropped`` the open windows whose carrier will never be sent (it was skipped
    or failed): all due ones, or ``window_id``. Returns how many."""
    condition = [
        _W.c.status == OPEN,
        _W.c.delivery_id.in_(select(_D.c.id).where(_D.c.status.in_(_FINAL))),
    ]
    condition.append(_W.c.id == window_id if window_id is not None else _W.c.closes_at <= now)
    stmt = update(_W).where(*condition).values(status=DROPPED, flushed_at=now).returning(_W.c.id)
    return len(session.execute(stmt).all())


class DigestPolicy(Policy):
    """Holds deliveries of digested types in windows and sends each window as one."""

    name = "digest"

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        relevant = [c for c in candidates if c.channel in c.type.digest]
        if not relevant:
            return {}
        ids = [c.delivery_id for c in relevant]
        carried = {
            w.delivery_id: w for w in session.execute(select(_W).where(_W.c.delivery_id.in_(ids)))
        }
        listed = dict(
            session.execute(
                select(_I.c.delivery_id, _I.c.window_id).where(_I.c.delivery_id.in_(ids))
            ).all()
        )
        decisions: dict[int, Decision] = {}
        # Items first: one released together with its window's carrier (both held by
        # quiet hours until the same instant) joins before the window closes.
        relevant.sort(key=lambda c: c.delivery_id in carried)
        for c in relevant:
            window = carried.get(c.delivery_id)
            if window is not None:
                decisions[c.delivery_id] = self._carry(session, window, now)
            elif c.delivery_id in listed:  # already gathered: never sent alone
                decisions[c.delivery_id] = Decision.skip(
                    Reason.DIGEST, f"in digest window {listed[c.delivery_id]}"
                )
            elif c.priority is not Priority.URGENT:
                decisions[c.delivery_id] = self._hold(session, c, now)
        return decisions

    def _carry(self, session: Session, window: Any, now: datetime) -> Decision:
        """The decision for a window's carrier."""
        if window.status == OPEN and window.closes_at > now:
            return _deferred(window.id, window.closes_at)
        if window.status == OPEN:
            closed = session.execute(
                update(_W)
                .where(_W.c.id == window.id, _W.c.status == OPEN)
                .values(status=FLUSHED, flushed_at=now)
                .returning(_W.c.id)
            ).first()
            if closed is None:  # dropped meanwhile
                return Decision.skip(Reason.DIGEST, f"digest window {window.id} was dropped")
        elif window.status != FLUSHED:
            return Decision.skip(Reason.DIGEST, f"digest window {window.id} was dropped")
        digest = digest_of(session, window)
        detail = f"digest window {window.id}: {len(digest.entries)} items"
        return Decision.send(detail=detail, digest=digest)

    def _hold(self, session: Session, c: Candidate, now: datetime) -> Decision:
        """Gather ``c`` into the subscriber's open window, opening one if there is none."""
        key = (
            _W.c.subscriber_id == c.recipient.id,
            _W.c.type == c.type.name,
            _W.c.channel == c.channel,
            _W.c.status == OPEN,
        )
        for _ in range(3):
            window = session.execute(
                select(_W.c.id, _W.c.delivery_id, _W.c.closes_at).where(*key)
            ).first()
            if window is None:
                opened = self._open(session, c, now)
                if opened is not None:
                    return opened
                continue  # another worker opened it first: join theirs
            if drop_dead(session, now, window.id):
                continue
            joined = session.execute(
                update(_W)
                .where(_W.c.id == window.id, _W.c.status == OPEN)
                .values(item_count=_W.c.item_count + 1)
                .returning(_W.c.id)
            ).first()
            if joined is None:
                continue  # flushed meanwhile: open the next one
            session.execute(_I.insert().values(delivery_id=c.delivery_id, window_id=window.id))
            return Decision.skip(
                Reason.DIGEST,
                f"in digest window {window.id}, sent with delivery {window.delivery_id} "
                f"at {window.closes_at.isoformat()}",
            )
        # Three races lost in a row: decide again in a minute rather than send alone.
        return Decision.defer(now + timedelta(minutes=1), Reason.DIGEST, "digest window busy")

    def _open(self, session: Session, c: Candidate, now: datetime) -> Decision | None:
        closes_at = now + c.type.digest[c.channel]
        dialect = postgresql if session.connection().dialect.name == "postgresql" else sqlite
        stmt = (
            dialect.insert(_W)
            .values(
                subscriber_id=c.recipient.id,
                type=c.type.name,
                channel=c.channel,
                status=OPEN,
                opened_at=now,
                closes_at=closes_at,
                delivery_id=c.delivery_id,
                item_count=1,
            )
            .on_conflict_do_nothing(
                index_elements=["subscriber_id", "type", "channel"],
                index_where=_W.c.status == OPEN,
            )
            .returning(_W.c.id)
        )
        window_id = session.execute(stmt).scalar()
        if window_id is None:
            return None
        session.execute(_I.insert().values(delivery_id=c.delivery_id, window_id=window_id))
        return _deferred(window_id, closes_at)


def _deferred(window_id: int, closes_at: datetime) -> Decision:
    return Decision.defer(
        closes_at,
        Reason.DIGEST,
        f"opens digest window {window_id}; sent at {closes_at.isoformat()}",
    )
