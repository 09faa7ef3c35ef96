"""``explain``: what happened to an event (or one notification), recipient by recipient.

References a support person can paste:

* ``e123`` or a bare ``123``: event 123 (the id ``notify`` returns), every recipient;
* ``n456``: notification 456 (the id an inbox item or the gateway shows), one recipient;
* ``key:<idempotency key>``: the event stored with that key.

Each delivery line reads like ``sent``, ``skipped: opted_out (rule: type=ticket_updated
channel=email)``, ``scheduled: quiet_hours until 07:00 Europe/Madrid (05:00 UTC)`` or
``failed: template_error missing variable 'seller'``, followed by its steps: every
recorded decision with its instant, plus creation and sending.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.db.engine import Store
from dispatcher.db.models import Delivery, DeliveryStep, Event, Notification, Subscriber
from dispatcher.enums import DeliveryStatus, Reason
from dispatcher.errors import NotFoundError, ValidationError
from dispatcher.validation import check_storable

#: Reasons whose detail reads as a continuation (``quiet_hours until 07:00 ...``);
#: other details are shown in parentheses (``opted_out (rule: ...)``).
_INLINE = frozenset(
    {
        Reason.QUIET_HOURS,
        Reason.RATE_LIMITED,
        Reason.TEMPLATE_ERROR,
        Reason.TEMPLATE_LIMIT,
        Reason.COLLAPSED,
    }
)


def summarize(status: str, reason: str | None, detail: str | None) -> str:
    """One line: ``status``, ``status: reason``, plus the detail when there is one."""
    if status == DeliveryStatus.SENT:
        return "sent"
    text = status if reason is None else f"{status}: {reason}"
    if detail:
        text += f" {detail}" if reason in _INLINE else f" ({detail})"
    return text


@dataclass(frozen=True)
class Step:
    """One recorded decision or attempt on a delivery."""

    at: datetime
    status: str
    reason: str | None
    detail: str | None

    @property
    def summary(self) -> str:
        return summarize(self.status, self.reason, self.detail)


@dataclass(frozen=True)
class DeliveryTrail:
    """One channel of one notification: where it stands and how it got there."""

    delivery_id: int
    channel: str
    status: str
    reason: str | None
    detail: str | None
    attempts: int
    scheduled_for: datetime
    sent_at: datetime | None
    provider_id: str | None
    steps: list[Step]

    @property
    def summary(self) -> str:
        return summarize(self.status, self.reason, self.detail)


@dataclass(frozen=True)
class RecipientTrail:
    """One subscriber's notification and its deliveries."""

    subscriber_id: str
    notification_id: int
    timezone: str
    deliveries: list[DeliveryTrail]


@dataclass(frozen=True)
class Explanation:
    """The trail of one event, for all recipients (by subscriber id) or the one a
    notification names."""

    event_id: int
    type: str
    priority: str
    status: str
    idempotency_key: str | None
    created_at: datetime
    send_at: datetime
    fanned_out_at: datetime | None
    recipients: list[RecipientTrail] = field(default_factory=list)
    #: Why fan-out gave up on a ``failed`` event, and what it met (never the data).
    reason: str | None = None
    detail: str | None = None
    #: Who caused it, if the app said (``notify(actor=...)``).
    actor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (instants as ISO 8601 UTC, summaries included)."""
        out: dict[str, Any] = _jsonable(asdict(self))
        for r_out, r in zip(out["recipients"], self.recipients, strict=True):
            for d_out, d in zip(r_out["deliveries"], r.deliveries, strict=True):
                d_out["summary"] = d.summary
                for s_out, s in zip(d_out["steps"], d.steps, strict=True):
                    s_out["summary"] = s.summary
        return out

    def lines(self) -> Iterator[str]:
        """The trail as text for a support person."""
        yield (
            f"event {self.event_id}  {self.type}  priority {self.priority}  "
            f"{self.status}  created {_fmt(self.created_at)}"
        )
        if self.send_at > self.created_at:
            yield f"  send at {_fmt(self.send_at)}"
        if self.idempotency_key:
            yield f"  idempotency key {self.idempotency_key}"
        if self.actor:
            yield f"  actor {self.actor}"
        if self.reason:
            yield f"  fan-out failed: {self.reason}" + (f" ({self.detail})" if self.detail else "")
        if not self.recipients and not self.reason:
            yield "  no notifications yet" if self.fanned_out_at is None else "  no recipients"
        for r in self.recipients:
            yield f"  {r.subscriber_id}  (notification {r.notification_id}, {r.timezone})"
            for d in r.deliveries:
                yield f"    {d.channel:<9} {d.summary}"
                for s in d.steps:
                    yield f"      {_fmt(s.at)}  {s.summary}"


def parse_ref(ref: str | int) -> tuple[str, str]:
    """``("event", "123")``, ``("notification", "456")`` or ``("key", "...")``.

    Raises:
        ValidationError: the reference has none of the documented forms.
    """
    text = str(ref).strip()
    if text.startswith("key:") and len(text) > 4:
        return "key", check_storable(text[4:], "idempotency key")
    kind = "event"
    if text[:1].lower() in ("e", "n") and text[1:].isdigit():
        kind = "notification" if text[0].lower() == "n" else "event"
        text = text[1:]
    if not text.isdigit() or len(text) > 18:
        raise ValidationError(
            f"cannot explain {ref!r}: use an event id (123 or e123), "
            "a notification id (n456) or key:<idempotency key>"
        )
    return kind, text


def explain(store: Store, ref: str | int) -> Explanation:
    """The trail for ``ref`` (see the module docstring for the forms it takes).

    Raises:
        ValidationError: malformed reference.
        NotFoundError: no such event or notification.
    """
    kind, value = parse_ref(ref)
    with store.session() as session:
        only: int | None = None
        if kind == "notification":
            notification = session.get(Notification, int(value))
            if notification is None:
                raise NotFoundError(f"no notification {value}")
            event = session.get(Event, notification.event_id)
            only = notification.id
        elif kind == "key":
            event = session.scalar(select(Event).where(Event.idempotency_key == value))
        else:
            event = session.get(Event, int(value))
        if event is None:
            raise NotFoundError(f"no event {value if kind != 'key' else 'with key ' + value}")
        return Explanation(
            event_id=event.id,
            type=event.type,
            priority=str(event.priority),
            status=str(event.status),
            idempotency_key=event.idempotency_key,
            created_at=event.created_at,
            send_at=event.send_at,
            fanned_out_at=event.fanned_out_at,
            recipients=_recipients(session, event.id, only),
            reason=event.reason,
            detail=event.detail,
            actor=event.actor,
        )


def _recipients(session: Session, event_id: int, only: int | None) -> list[RecipientTrail]:
    stmt = (
        select(Notification.id, Subscriber.external_id, Subscriber.timezone)
        .join(Subscriber, Subscriber.id == Notification.subscriber_id)
        .where(Notification.event_id == event_id)
        .order_by(Subscriber.external_id, Notification.id)
    )
    if only is not None:
        stmt = stmt.where(Notification.id == only)
    people = session.execute(stmt).all()
    ids = [p.id for p in people]
    deliveries: dict[int, list[Delivery]] = {}
    steps: dict[int, list[Step]] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        for d in session.scalars(
            select(Delivery).where(Delivery.notification_id.in_(chunk)).order_by(Delivery.id)
        ):
            deliveries.setdefault(d.notification_id, []).append(d)
        delivery_ids = [d.id for n in chunk for d in deliveries.get(n, [])]
        for s in session.scalars(
            select(DeliveryStep)
            .where(DeliveryStep.delivery_id.in_(delivery_ids))
            .order_by(DeliveryStep.at, DeliveryStep.id)
        ):
            steps.setdefault(s.delivery_id, []).append(
                Step(s.at, str(s.status), s.reason, s.detail)
            )
    return [
        RecipientTrail(
            subscriber_id=p.external_id,
            notification_id=p.id,
            timezone=p.timezone,
            deliveries=[_trail(d, steps.get(d.id, [])) for d in deliveries.get(p.id, [])],
        )
        for p in people
    ]


def _trail(d: Delivery, recorded: list[Step]) -> DeliveryTrail:
    timeline = [Step(d.created_at, "created", None, None), *recorded]
    if d.sent_at is not None:
        timeline.append(Step(d.sent_at, str(DeliveryStatus.SENT), None, d.detail))
    return DeliveryTrail(
        delivery_id=d.id,
        channel=d.channel,
        status=str(d.status),
        reason=d.reason,
        detail=d.detail,
        attempts=d.attempts,
        scheduled_for=d.scheduled_for,
        sent_at=d.sent_at,
        provider_id=d.provider_id,
        steps=timeline,
    )


def _fmt(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
