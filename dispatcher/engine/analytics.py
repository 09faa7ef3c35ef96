"""Engagement analytics: per type, channel and day, counted by the database.

Every figure is one ``GROUP BY`` over the delivery rows (and their trail, the
notifications' seen/read times, and the clicks), so the cost does not depend on
Python looping over rows. A delivery counts on the UTC day it was created; ``since``
filters on the same column.

* ``dispatched``: deliveries created; ``sent``/``skipped``/``failed`` by their status
  now (skipped and failed by reason); ``in_flight`` the rest (pending, scheduled,
  sending).
* ``deferred``: deliveries whose trail holds a deferral (a ``scheduled`` step for a
  policy such as quiet hours or the rate limit; retry back-off is not a deferral),
  counted once each whatever their status now.
* ``latency_p50``/``latency_p95``: seconds from the event's creation to ``sent_at``.
  PostgreSQL computes ``percentile_cont``. SQLite has no percentile aggregate: a window
  query numbers each group's latencies in order and the outer query interpolates
  between the two neighbouring ranks exactly as ``percentile_cont`` does (position
  ``(n - 1) * p``), so both stores report the same figure.
* ``seen``/``read``: in-app deliveries sent whose notification was seen/read; rates
  are over in-app ``sent``.
* ``clicks``: follows of tracked links (``/c/{token}``) in email and push;
  ``clicked`` counts deliveries with at least one, and the click rate is over ``sent``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    and_,
    case,
    cast,
    distinct,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy import Text as SqlText

from dispatcher import log
from dispatcher.channels.clicks import ClickTarget, verify_click_token
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Campaign, Click, Delivery, DeliveryStep, Event, Notification
from dispatcher.db.types import UTCDateTime
from dispatcher.enums import DeliveryStatus, Reason
from dispatcher.errors import ValidationError

#: The percentiles reported, as (name, fraction).
PERCENTILES = (("latency_p50", 0.5), ("latency_p95", 0.95))
IN_APP = "in_app"

_Key = tuple[str, str, str]


@dataclass
class EngagementRow:
    """One notification type on one channel on one UTC day."""

    type: str
    channel: str
    day: str
    dispatched: int = 0
    sent: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    deferred: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None
    seen: int = 0
    read: int = 0
    clicks: int = 0
    clicked: int = 0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def rate(self, count: int) -> float | None:
        return round(count / self.sent, 4) if self.sent else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        in_app = self.channel == IN_APP
        out["seen_rate"] = self.rate(self.seen) if in_app else None
        out["read_rate"] = self.rate(self.read) if in_app else None
        out["click_rate"] = None if in_app else self.rate(self.clicked)
        return out


@dataclass(frozen=True)
class CampaignProgress:
    """A campaign's deliveries so far, by outcome."""

    id: int
    name: str
    type: str
    status: str
    deliveries: int
    sent: int
    failed: int
    skipped: int
    in_flight: int

    @property
    def settled(self) -> int:
        return self.sent + self.failed + self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "settled": self.settled}


@dataclass(frozen=True)
class EngagementReport:
    """What :meth:`Analytics.report` found since ``since``."""

    since: datetime | None
    rows: list[EngagementRow]
    campaigns: list[CampaignProgress]

    def totals(self) -> dict[str, int]:
        """Counts summed over every row (percentiles do not add up, so none here)."""
        keys = ("dispatched", "sent", "deferred", "in_flight", "seen", "read", "clicks")
        out = {k: sum(int(getattr(r, k)) for r in self.rows) for k in keys}
        out["skipped"] = sum(r.skipped_total for r in self.rows)
        out["failed"] = sum(r.failed_total for r in self.rows)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "totals": self.totals(),
            "rows": [r.to_dict() for r in self.rows],
            "campaigns": [c.to_dict() for c in self.campaigns],
        }


class Analytics:
    """``Dispatcher.analytics``: engagement figures computed in the database, and the
    clicks that feed them."""

    def __init__(self, store: Store, signing_secret: SecretStr | str) -> None:
        self.store = store
        self._secret = signing_secret

    def follow(self, token: str, *, now: datetime | None = None) -> ClickTarget:
        """Verify a click-tracking ``token`` and record one click on its delivery.

        The click is recorded only while the delivery exists (a purged one still
        redirects). Returns where to send the person.

        Raises:
            InvalidClickTokenError: forged, malformed or expired (``expired``); nothing
                is recorded.
        """
        now = now or utcnow()
        target = verify_click_token(token, self._secret, now=now)
        exists = select(Delivery.id).where(Delivery.id == target.delivery_id).exists()
        with self.store.session(write=True) as s:
            recorded = s.execute(
                insert(Click)
                .from_select(
                    ["delivery_id", "url", "clicked_at"],
                    select(
                        literal(target.delivery_id, BigInteger),
                        literal(target.url, SqlText),
                        literal(now, UTCDateTime()),
                    ).where(exists),
                )
                .returning(Click.id)
            ).first()
        log.info("click.followed", delivery_id=target.delivery_id, recorded=recorded is not None)
        return target

    def _day(self, column: Any) -> ColumnElement[str]:
        if self.store.is_postgres:
            return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
        return func.strftime("%Y-%m-%d", column)

    def _seconds(self, later: Any, earlier: Any) -> ColumnElement[float]:
        if self.store.is_postgres:
            return cast(func.extract("epoch", later - earlier), Float)
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0

    def report(
        self,
        *,
        since: datetime | timedelta | str | None = None,
        campaigns: int = 20,
        now: datetime | None = None,
    ) -> EngagementReport:
        """Engagement per type, channel and day for deliveries created at or after
        ``since`` (everything when None), and the newest ``campaigns``' progress.

        ``since`` is an aware datetime, a timedelta back from ``now``, or a window such
        as ``"90m"``, ``"1h"``, ``"1d"``, ``"2w"``.

        Raises:
            ValidationError: ``since`` is not one of those.
        """
        since = resolve_since(since, now)
        rows: dict[_Key, EngagementRow] = {}

        def row(key: Any) -> EngagementRow:
            k = (str(key[0]), str(key[1]), str(key[2]))
            if k not in rows:
                rows[k] = EngagementRow(*k)
            return rows[k]

        day = self._day(Delivery.created_at).label("day")
        keys = (Notification.type, Delivery.channel, day)
        base = select(*keys).join(Notification, Notification.id == Delivery.notification_id)
        if since is not None:
            base = base.where(Delivery.created_at >= since)
        status = Delivery.status

        def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.sum(case((condition, 1), else_=0))

        sent_in_app = and_(status == DeliveryStatus.SENT, Delivery.channel == IN_APP)
        counts = base.add_columns(
            func.count().label("dispatched"),
            count_if(status == DeliveryStatus.SENT).label("sent"),
            count_if(status.in_(_UNSETTLED)).label("in_flight"),
            count_if(and_(sent_in_app, Notification.seen_at.is_not(None))).label("seen"),
            count_if(and_(sent_in_app, Notification.read_at.is_not(None))).label("read"),
        ).group_by(*keys)
        reasons = (
            base.add_columns(status, Delivery.reason, func.count())
            .where(status.in_((DeliveryStatus.SKIPPED, DeliveryStatus.FAILED)))
            .group_by(*keys, status, Delivery.reason)
        )
        deferred = (
            base.add_columns(func.count(distinct(Delivery.id)))
            .join(DeliveryStep, DeliveryStep.delivery_id == Delivery.id)
            .where(
                DeliveryStep.status == DeliveryStatus.SCHEDULED,
                DeliveryStep.reason.is_not(None),
                DeliveryStep.reason != Reason.RETRYING.value,
            )
            .group_by(*keys)
        )
        clicks = (
            base.add_columns(func.count(Click.id), func.count(distinct(Click.delivery_id)))
            .join(Click, Click.delivery_id == Delivery.id)
            .group_by(*keys)
        )
        with self.store.session() as s:
            for r in s.execute(counts):
                target = row(r)
                target.dispatched = int(r.dispatched)
                target.sent = int(r.sent or 0)
                target.in_flight = int(r.in_flight or 0)
                target.seen = int(r.seen or 0)
                target.read = int(r.read or 0)
            for t, ch, d, st, reason, n in s.execute(reasons):
                bucket = row((t, ch, d)).skipped if st is DeliveryStatus.SKIPPED else None
                if bucket is None:
                    bucket = row((t, ch, d)).failed
                bucket[reason or "unknown"] = int(n)
            for t, ch, d, n in s.execute(deferred):
                row((t, ch, d)).deferred = int(n)
            for t, ch, d, n, clicked in s.execute(clicks):
                target = row((t, ch, d))
                target.clicks, target.clicked = int(n), int(clicked)
            for r in s.execute(self._latency(since)):
                target = row(r)
                target.latency_p50 = _seconds(r.latency_p50)
                target.latency_p95 = _seconds(r.latency_p95)
            progress = self._campaigns(s, campaigns)
        ordered = sorted(rows.values(), key=lambda r: (r.day, r.type, r.channel))
        return EngagementReport(since, ordered, progress)

    def _latency(self, since: datetime | None) -> Any:
        day = self._day(Delivery.created_at).label("day")
        seconds = self._seconds(Delivery.sent_at, Event.created_at)
        keys = (Notification.type, Delivery.channel, day)
        sent = (
            select(*keys)
            .join(Notification, Notification.id == Delivery.notification_id)
            .join(Event, Event.id == Notification.event_id)
            .where(Delivery.status == DeliveryStatus.SENT, Delivery.sent_at.is_not(None))
        )
        if since is not None:
            sent = sent.where(Delivery.created_at >= since)
        if self.store.is_postgres:
            return sent.add_columns(
                *(func.percentile_cont(p).within_group(seconds).label(n) for n, p in PERCENTILES)
            ).group_by(*keys)
        # SQLite: rank each group's latencies, then interpolate like percentile_cont.
        group = (Notification.type, Delivery.channel, day)
        ranked = sent.add_columns(
            seconds.label("seconds"),
            (func.row_number().over(partition_by=group, order_by=seconds) - 1).label("rank"),
            func.count().over(partition_by=group).label("n"),
        ).subquery()
        picks = []
        for name, p in PERCENTILES:
            position = (ranked.c.n - 1) * literal(p)
            floor = cast(position, Integer)
            low = func.max(case((ranked.c.rank == floor, ranked.c.seconds)))
            high = func.max(case((ranked.c.rank == floor + 1, ranked.c.seconds)))
            fraction = func.max(position - floor)
            picks.append((low + (func.coalesce(high, low) - low) * fraction).label(name))
        return select(ranked.c.type, ranked.c.channel, ranked.c.day, *picks).group_by(
            ranked.c.type, ranked.c.channel, ranked.c.day
        )

    def _campaigns(self, s: Any, limit: int) -> list[CampaignProgress]:
        status = Delivery.status

        def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        newest = select(Campaign.id).order_by(Campaign.id.desc()).limit(limit).subquery()
        stmt = (
            select(
                Campaign.id,
                Campaign.name,
                Campaign.type,
                Campaign.status,
                func.count(Delivery.id),
                count_if(status == DeliveryStatus.SENT),
                count_if(status == DeliveryStatus.FAILED),
                count_if(status == DeliveryStatus.SKIPPED),
                count_if(status.in_(_UNSETTLED)),
            )
            .where(Campaign.id.in_(select(newest.c.id)))
            .outerjoin(Event, Event.campaign_id == Campaign.id)
            .outerjoin(Notification, Notification.event_id == Event.id)
            .outerjoin(Delivery, Delivery.notification_id == Notification.id)
            .group_by(Campaign.id, Campaign.name, Campaign.type, Campaign.status)
            .order_by(Campaign.id.desc())
        )
        return [
            CampaignProgress(int(i), n, t, st, *(int(x) for x in counts))
            for i, n, t, st, *counts in s.execute(stmt)
        ]


_UNSETTLED = (DeliveryStatus.PENDING, DeliveryStatus.SCHEDULED, DeliveryStatus.SENDING)


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


_WINDOW = re.compile(r"([1-9][0-9]{0,5})([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_window(text: str) -> timedelta:
    """``"15m"``, ``"1h"``, ``"1d"``, ``"2w"`` as a timedelta.

    Raises:
        ValidationError: anything else.
    """
    match = _WINDOW.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValidationError(
            f"since: expected a number and a unit (s, m, h, d, w), like 1h or 7d; got {text!r}"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def resolve_since(
    since: datetime | timedelta | str | None, now: datetime | None = None
) -> datetime | None:
    """An aware instant from what :meth:`Analytics.report` accepts as ``since``."""
    if since is None or isinstance(since, datetime):
        if since is not None and since.tzinfo is None:
            raise ValidationError("since: pass an aware datetime")
        return since
    window = since if isinstance(since, timedelta) else parse_window(since)
    return (now or utcnow()) - window
