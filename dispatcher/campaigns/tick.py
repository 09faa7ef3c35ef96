"""Beat's campaign tick: start due runs by claiming them, ring stalled runs again.

A due campaign is claimed with a conditional update of its ``next_run_at`` (from the
value read to the following occurrence) in the same transaction that creates the run;
runs are also unique per (campaign, occurrence). Two beats, or one tick run twice at
once, therefore start each occurrence exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from dispatcher import log
from dispatcher.campaigns.runs import start_run
from dispatcher.campaigns.schedule import next_after, parse_cron
from dispatcher.catalog import Catalog
from dispatcher.db.engine import Store
from dispatcher.db.models import Campaign, CampaignRun, table
from dispatcher.engine.doorbell import Doorbell
from dispatcher.enums import CampaignStatus

_C = table(Campaign)
_R = table(CampaignRun)
#: Campaigns whose next run beat may start (a running or paused recurring campaign's
#: next occurrence starts too: each run has its own cursor).
_STARTABLE = [
    CampaignStatus.SCHEDULED.value,
    CampaignStatus.RUNNING.value,
    CampaignStatus.PAUSED.value,
    CampaignStatus.COMPLETED.value,
]


@dataclass(frozen=True)
class TickResult:
    #: Runs this tick started, and runs it rang again.
    started: list[int]
    rung: list[int]


def following(campaign: object, occurrence: datetime) -> datetime | None:
    """The occurrence after ``occurrence`` of a campaign row (None: no more runs)."""
    cron = getattr(campaign, "cron", None)
    if not cron:
        return None
    nxt = next_after(parse_cron(cron), ZoneInfo(getattr(campaign, "timezone", "UTC")), occurrence)
    end_at = getattr(campaign, "end_at", None)
    if nxt is not None and end_at is not None and nxt >= end_at:
        return None
    return nxt


def tick(
    store: Store,
    catalog: Catalog,
    doorbell: Doorbell,
    *,
    now: datetime,
    stall: timedelta,
    limit: int = 100,
) -> TickResult:
    """Start every due run, and ring chunks of running runs that have not moved for
    ``stall``; safe to run in several processes at once."""
    started: list[int] = []
    with store.session() as session:
        due = session.execute(
            select(_C.c.id, _C.c.next_run_at)
            .where(_C.c.next_run_at <= now, _C.c.status.in_(_STARTABLE))
            .order_by(_C.c.next_run_at)
            .limit(limit)
        ).all()
    for campaign_id, occurrence in due:
        try:
            run_id = _start_due(store, catalog, campaign_id, occurrence, now)
        except IntegrityError:  # another tick created this occurrence's run first
            run_id = None
        if run_id is not None:
            started.append(run_id)
            doorbell.campaign_chunk(run_id)
    with store.session() as session:
        stalled = list(
            session.scalars(
                select(_R.c.id).where(
                    _R.c.status == CampaignStatus.RUNNING.value, _R.c.updated_at < now - stall
                )
            )
        )
    for run_id in stalled:
        doorbell.campaign_chunk(run_id)
    if started or stalled:
        log.info("campaign.tick", started=started or None, rung=stalled or None)
    return TickResult(started, stalled)


def _start_due(
    store: Store, catalog: Catalog, campaign_id: int, occurrence: datetime, now: datetime
) -> int | None:
    with store.session(write=True) as session:
        conn = session.connection()
        campaign = conn.execute(select(_C).where(_C.c.id == campaign_id)).one_or_none()
        if campaign is None or campaign.next_run_at != occurrence:
            return None  # another tick moved it on
        nxt = following(campaign, occurrence)
        # Skip occurrences missed while beat was down: the next one is in the future.
        while nxt is not None and nxt <= now:
            nxt = following(campaign, nxt)
        claimed = conn.execute(
            update(_C)
            .where(_C.c.id == campaign_id, _C.c.next_run_at == occurrence)
            .values(next_run_at=nxt, updated_at=now)
        ).rowcount
        if claimed != 1:
            return None
        if campaign.end_at is not None and occurrence >= campaign.end_at:
            return None
        return start_run(session, catalog, campaign, occurrence, now, postgres=store.is_postgres)
