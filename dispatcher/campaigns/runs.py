"""Campaign runs: start one (its audience recorded), then create and send it chunk by chunk.

A run is a database row with a cursor: the highest subscriber id whose chunk is
committed. A chunk task locks the run, takes the next ``chunk_size`` recipients past the
cursor, creates their notifications and deliveries with ``INSERT … SELECT`` (``ON
CONFLICT DO NOTHING``), decides and stores in-app content, and moves the cursor, all in
one transaction; then it publishes the chunk's pings (one call), sends the rest, and
rings the next chunk. A chunk that dies before its commit left nothing; one that dies after
it is past the cursor, and its claimed deliveries come back to the sweep when their
lease runs out. So a re-run creates no duplicate row.

The run's notifications hang off one event (``campaign_id`` set, already fanned out),
so they are ordinary notifications and deliveries: policies, ``explain``, the sweep,
operators' retries and the inbox treat them like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.campaigns import audience as audiences
from dispatcher.campaigns import segments
from dispatcher.campaigns.definition import parse_audience
from dispatcher.catalog import Catalog
from dispatcher.db.engine import Store, insert_ignore
from dispatcher.db.models import (
    Campaign,
    CampaignAudience,
    CampaignRun,
    Delivery,
    DeliveryStep,
    Event,
    Notification,
    Subscriber,
    table,
)
from dispatcher.db.types import UTCDateTime
from dispatcher.engine import bulk_inbox
from dispatcher.engine.bulk_inbox import Pings
from dispatcher.engine.delivery import (
    RECIPIENT_COLUMNS,
    Batch,
    Deliverer,
    EventFacts,
    NewDelivery,
)
from dispatcher.engine.members import Audience
from dispatcher.enums import CampaignStatus, DeliveryStatus, EventStatus, Priority, Reason

_C = table(Campaign)
_R = table(CampaignRun)
_A = table(CampaignAudience)
_E = table(Event)
_N = table(Notification)
_D = table(Delivery)
_S = table(Subscriber)
_STEPS = table(DeliveryStep)


@dataclass(frozen=True)
class ChunkResult:
    run_id: int
    #: Notifications this chunk created (0 when the run was not running or had ended).
    created: int
    #: The run is still running and another chunk was rung.
    more: bool
    status: str
    #: Deliveries claimed and decided here (sent after the commit).
    claimed: int = 0


def start_run(
    session: Session,
    catalog: Catalog,
    campaign: Any,
    occurrence: datetime,
    now: datetime,
    *,
    postgres: bool,
) -> int | None:
    """Create a run of ``campaign`` (a loaded campaigns row) for ``occurrence``: its event
    and its audience, resolved now. Returns its id, or None if that occurrence already
    has a run."""
    conn = session.connection()
    exists = conn.execute(
        select(_R.c.id).where(_R.c.campaign_id == campaign.id, _R.c.occurrence == occurrence)
    ).first()
    if exists is not None:
        return None
    notification_type = catalog.get(campaign.type)
    event_id = conn.execute(
        insert(_E).returning(_E.c.id),
        {
            "type": campaign.type,
            "payload": campaign.data,
            "recipients": [],
            "priority": Priority(campaign.priority),
            "idempotency_key": None,
            "send_at": now,
            "status": EventStatus.FANNED_OUT,
            "campaign_id": campaign.id,
            "created_at": now,
            "fanned_out_at": now,
            "fanout_attempts": 0,
        },
    ).scalar_one()
    run_id = conn.execute(
        insert(_R).returning(_R.c.id),
        {
            "campaign_id": campaign.id,
            "occurrence": occurrence,
            "event_id": event_id,
            "status": CampaignStatus.RUNNING.value,
            "cursor": 0,
            "targeted": 0,
            "created": 0,
            "chunks": 0,
            "paced": {},
            "started_at": now,
            "updated_at": now,
        },
    ).scalar_one()
    # A segment is read now: edits made since the campaign was saved apply.
    audience = segments.resolve(conn, parse_audience(campaign.audience))
    targeted = audiences.record(conn, run_id, audience, postgres) if audience else 0
    conn.execute(update(_R).where(_R.c.id == run_id).values(targeted=targeted))
    conn.execute(
        update(_C)
        .where(_C.c.id == campaign.id)
        .values(status=CampaignStatus.RUNNING.value, updated_at=now)
    )
    log.info(
        "campaign.run_started",
        campaign_id=campaign.id,
        run_id=run_id,
        event_id=event_id,
        targeted=targeted,
        type=notification_type.name,
    )
    return int(run_id)


_LOAD_RUN = (
    select(
        _R.c.id,
        _R.c.status,
        _R.c.cursor,
        _R.c.event_id,
        _R.c.started_at,
        _R.c.paced,
        _R.c.created,
        _C.c.id.label("campaign_id"),
        _C.c.type,
        _C.c.data,
        _C.c.priority,
        _C.c.channels,
        _C.c.send_rates,
        _C.c.next_run_at,
        _C.c.content,
    )
    .join(_C, _C.c.id == _R.c.campaign_id)
    .where(_R.c.id == bindparam("run_id"))
)
_NEXT_IDS = (
    select(_A.c.subscriber_id)
    .where(_A.c.run_id == bindparam("run_id"), _A.c.subscriber_id > bindparam("low"))
    .order_by(_A.c.subscriber_id)
    .limit(bindparam("size"))
    .subquery()
)
_NEXT_HIGH = select(func.max(_NEXT_IDS.c.subscriber_id))
_IN_CHUNK = and_(
    _N.c.event_id == bindparam("event_id"),
    _N.c.subscriber_id > bindparam("low"),
    _N.c.subscriber_id <= bindparam("high"),
)
_CLAIMED_ROWS = (
    select(
        _D.c.id,
        _D.c.notification_id,
        _D.c.channel,
        *RECIPIENT_COLUMNS,
    )
    .join(_N, _N.c.id == _D.c.notification_id)
    .join(_S, _S.c.id == _N.c.subscriber_id)
    .where(
        _IN_CHUNK,
        _D.c.status == DeliveryStatus.SENDING,
        _D.c.attempts == 1,
        _D.c.channel.in_(bindparam("channels", expanding=True)),
    )
    .order_by(_N.c.subscriber_id, _D.c.id)
)


def _insert_ignore(postgres: bool, target: Any) -> Any:
    return (
        postgresql.insert(target) if postgres else sqlite.insert(target)
    ).on_conflict_do_nothing()


def run_chunk(
    store: Store,
    catalog: Catalog,
    deliverer: Deliverer,
    run_id: int,
    *,
    chunk_size: int,
    now: datetime,
) -> tuple[ChunkResult, Batch | None, Pings | None]:
    """Create and decide the next chunk of run ``run_id`` in one transaction; returns
    the result, the batch to send once committed, and the set-based in-app pings to
    publish then (None when nothing was created)."""
    postgres = store.is_postgres
    with store.session(write=True) as session:
        conn = session.connection()
        statement = _LOAD_RUN.with_for_update(of=_R) if postgres else _LOAD_RUN
        run = conn.execute(statement, {"run_id": run_id}).one_or_none()
        if run is None:
            return ChunkResult(run_id, 0, False, "gone"), None, None
        if run.status != CampaignStatus.RUNNING.value:
            return ChunkResult(run_id, 0, False, run.status), None, None
        low = run.cursor
        high = conn.execute(_NEXT_HIGH, {"run_id": run_id, "low": low, "size": chunk_size}).scalar()
        if high is None:
            _finish(conn, run, now)
            return ChunkResult(run_id, 0, False, CampaignStatus.COMPLETED.value), None, None
        notification_type = catalog.get(run.type)
        priority = Priority(run.priority)
        channels = list(run.channels or notification_type.channels)
        rates: dict[str, int] = dict(run.send_rates or {})
        bounds = {"event_id": run.event_id, "low": low, "high": high}
        immediate = [c for c in channels if c not in rates]
        facts = EventFacts(run.event_id, run.type, run.data, priority, now, content=run.content)
        audience = Audience.of_run(run_id, low, high)
        inbox = (
            bulk_inbox.plan(conn, deliverer, audience, facts, notification_type)
            if bulk_inbox.IN_APP in immediate
            else None
        )
        in_chunk = [_A.c.run_id == run_id, _A.c.subscriber_id > low, _A.c.subscriber_id <= high]
        created = 0
        pings: list[tuple[str, str]] = []
        if inbox is not None:
            # Regular members: notifications with their inbox content and in-app
            # deliveries (sent) in one go; the rest below, the ordinary way.
            created, pings = bulk_inbox.store(conn, postgres, inbox, facts, notification_type)
            in_chunk.append(_A.c.subscriber_id.in_(inbox.exceptional))
        if inbox is None or inbox.exceptional:
            select_members = select(
                literal(run.event_id),
                _A.c.subscriber_id,
                literal(run.type, String()),
                literal(notification_type.category, String()),
                literal(priority.value, String()),
                literal(now, UTCDateTime()),
            ).where(
                *in_chunk,
                # A subscriber deleted since the run started is not in the chunk.
                select(_S.c.id).where(_S.c.id == _A.c.subscriber_id).exists(),
            )
            created += _count(
                conn.execute(
                    _insert_ignore(postgres, _N).from_select(
                        ["event_id", "subscriber_id", "type", "category", "priority", "created_at"],
                        select_members,
                    ),
                    execution_options={"preserve_rowcount": True},
                )
            )
        lease_until = now + deliverer.lease
        claims = False
        for channel in immediate:
            if inbox is not None and channel == bulk_inbox.IN_APP:
                if inbox.exceptional:
                    exceptional = _N.c.subscriber_id.in_(inbox.exceptional)
                    _insert_deliveries(
                        conn, postgres, channel, priority, bounds, now, lease_until, exceptional
                    )
                    claims = True
            else:
                _insert_deliveries(conn, postgres, channel, priority, bounds, now, lease_until)
                claims = True
        paced = dict(run.paced or {})
        for channel, rate in rates.items():
            paced[channel] = _pace(session, run, bounds, channel, rate, paced.get(channel, 0), now)
        claimed = (
            [
                NewDelivery(facts, row.id, row.notification_id, row.channel, row)
                for row in conn.execute(_CLAIMED_ROWS, {**bounds, "channels": immediate})
            ]
            if claims
            else []
        )
        batch = deliverer.prepare_claimed(session, claimed, now)
        conn.execute(
            update(_R)
            .where(_R.c.id == run_id)
            .values(
                cursor=high,
                created=_R.c.created + created,
                chunks=_R.c.chunks + 1,
                paced=paced,
                updated_at=now,
            )
        )
    result = ChunkResult(run_id, created, True, CampaignStatus.RUNNING.value, len(claimed))
    return result, batch, (Pings(inbox.channel, pings) if inbox is not None and pings else None)


def _count(result: Any) -> int:
    return max(result.rowcount or 0, 0)


def _insert_deliveries(
    conn: Connection,
    postgres: bool,
    channel: str,
    priority: Priority,
    bounds: dict[str, Any],
    now: datetime,
    lease_until: datetime,
    *where: Any,
) -> None:
    """The chunk's deliveries on ``channel``, claimed for the deliverer (first attempt,
    under a lease)."""
    conn.execute(
        _insert_ignore(postgres, _D).from_select(
            bulk_inbox.DELIVERY_COLUMNS,
            bulk_inbox.delivery_rows(
                _N.c.id, channel, priority, DeliveryStatus.SENDING, now, lease_until=lease_until
            ).where(_IN_CHUNK, *where),
        ),
        bounds,
    )


def _pace(
    session: Session,
    run: Any,
    bounds: dict[str, Any],
    channel: str,
    rate: int,
    before: int,
    now: datetime,
) -> int:
    """Create the chunk's deliveries on a channel with a send rate, each scheduled at
    its place in the run's queue for that channel (``rate`` per minute from the run's
    start); returns how many the run has on it now."""
    ids = (
        session.connection()
        .scalars(select(_N.c.id).where(_IN_CHUNK).order_by(_N.c.subscriber_id), bounds)
        .all()
    )
    step = 60.0 / rate
    detail = f"campaign send rate {rate}/min on {channel}"
    rows = [
        {
            "notification_id": nid,
            "channel": channel,
            "priority": Priority(run.priority),
            "status": DeliveryStatus.SCHEDULED,
            "attempts": 0,
            "scheduled_for": run.started_at + timedelta(seconds=(before + index) * step),
            "reason": Reason.CAMPAIGN_RATE.value,
            "detail": detail,
            "created_at": now,
            "updated_at": now,
        }
        for index, nid in enumerate(ids)
    ]
    insert_ignore(session, Delivery, rows)
    return before + len(ids)


def _finish(conn: Connection, run: Any, now: datetime) -> None:
    """Mark the run completed, and its campaign completed unless more runs are due."""
    conn.execute(
        update(_R)
        .where(_R.c.id == run.id)
        .values(status=CampaignStatus.COMPLETED.value, finished_at=now, updated_at=now)
    )
    following = (
        CampaignStatus.SCHEDULED if run.next_run_at is not None else CampaignStatus.COMPLETED
    )
    conn.execute(
        update(_C)
        .where(_C.c.id == run.campaign_id, _C.c.status == CampaignStatus.RUNNING.value)
        .values(status=following.value, updated_at=now)
    )
    log.info("campaign.run_completed", campaign_id=run.campaign_id, run_id=run.id)


def cancel_deliveries(conn: Connection, event_ids: list[int], now: datetime) -> int:
    """Skip the not-yet-sent deliveries of these runs' events (reason
    ``campaign_cancelled``), with their trail step; returns how many."""
    if not event_ids:
        return 0
    waiting = and_(
        _D.c.status.in_([DeliveryStatus.PENDING, DeliveryStatus.SCHEDULED]),
        _D.c.notification_id.in_(select(_N.c.id).where(_N.c.event_id.in_(event_ids))),
    )
    detail = "the campaign was cancelled"
    conn.execute(
        insert(_STEPS).from_select(
            ["delivery_id", "at", "status", "reason", "detail"],
            select(
                _D.c.id,
                literal(now, UTCDateTime()),
                literal(DeliveryStatus.SKIPPED.value, String()),
                literal(Reason.CAMPAIGN_CANCELLED.value, String()),
                literal(detail, String()),
            ).where(waiting),
        )
    )
    result = conn.execute(
        update(_D)
        .where(waiting)
        .values(
            status=DeliveryStatus.SKIPPED,
            reason=Reason.CAMPAIGN_CANCELLED.value,
            detail=detail,
            updated_at=now,
            lease_until=None,
        )
    )
    return max(result.rowcount or 0, 0)


def progress(conn: Connection, event_id: int | None) -> dict[str, Any]:
    """Deliveries of a run's event by status (and reason), overall and per channel."""
    out: dict[str, Any] = {
        "sent": 0,
        "skipped": {},
        "deferred": {},
        "failed": {},
        "in_flight": 0,
        "channels": {},
    }
    if event_id is None:
        return out
    rows = conn.execute(
        select(_D.c.channel, _D.c.status, _D.c.reason, func.count())
        .join(_N, _N.c.id == _D.c.notification_id)
        .where(_N.c.event_id == event_id)
        .group_by(_D.c.channel, _D.c.status, _D.c.reason)
    ).all()
    for channel, status, reason, n in rows:
        per = out["channels"].setdefault(channel, {"sent": 0, "skipped": 0, "deferred": 0})
        status = DeliveryStatus(status)
        if status is DeliveryStatus.SENT:
            out["sent"] += n
            per["sent"] += n
        elif status is DeliveryStatus.SKIPPED:
            out["skipped"][reason or "unknown"] = out["skipped"].get(reason or "unknown", 0) + n
            per["skipped"] += n
        elif status is DeliveryStatus.SCHEDULED:
            out["deferred"][reason or "unknown"] = out["deferred"].get(reason or "unknown", 0) + n
            per["deferred"] += n
        elif status is DeliveryStatus.FAILED:
            out["failed"][reason or "unknown"] = out["failed"].get(reason or "unknown", 0) + n
            per.setdefault("failed", 0)
            per["failed"] += n
        else:
            out["in_flight"] += n
    return out
