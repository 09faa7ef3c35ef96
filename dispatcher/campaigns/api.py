"""``d.campaigns``: create, list, show, preview, start, pause, resume and cancel campaigns."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update

from dispatcher import log
from dispatcher.campaigns import content, segments
from dispatcher.campaigns.definition import (
    check_aware,
    check_channels,
    check_priority,
    check_send_rates,
    check_timezone,
    parse_audience,
)
from dispatcher.campaigns.info import CampaignInfo, RunInfo, campaign_info, run_info
from dispatcher.campaigns.runs import cancel_deliveries, progress, start_run
from dispatcher.campaigns.schedule import next_after, parse_cron
from dispatcher.campaigns.segments import Segments
from dispatcher.catalog import Catalog
from dispatcher.channels.runtime import ChannelRuntime
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Campaign, CampaignRun, table
from dispatcher.engine.doorbell import Doorbell
from dispatcher.enums import CampaignStatus
from dispatcher.errors import CampaignStateError, InvalidCampaignError, NotFoundError
from dispatcher.templating.renderer import Renderer

_C = table(Campaign)
_R = table(CampaignRun)
#: States from which nothing more happens.
FINAL = (CampaignStatus.CANCELLED.value,)


class Campaigns:
    """Bulk and scheduled sends to an audience (see :mod:`dispatcher.campaigns`)."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        doorbell: Doorbell,
        preview: Callable[[CampaignInfo, datetime], Any] | None = None,
        renderer: Callable[[], Renderer] | None = None,
        channels: Callable[[], ChannelRuntime] | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.doorbell = doorbell
        self._preview = preview
        self._renderer = renderer
        self._channels = channels
        #: Named, reusable audiences (``{"segment": name}``).
        self.segments = Segments(store)

    # -- defining ------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        type: str,
        audience: Mapping[str, Any],
        data: Mapping[str, Any] | None = None,
        channels: Sequence[str] | None = None,
        priority: str | None = None,
        send_rates: Mapping[str, int] | None = None,
        start_at: datetime | None = None,
        cron: str | None = None,
        timezone: str = "UTC",
        end_at: datetime | None = None,
        templates: Mapping[str, Any] | None = None,
    ) -> CampaignInfo:
        """Save a campaign: a draft (start it with :meth:`start`), or scheduled when it
        has ``start_at`` or ``cron`` (beat starts it).

        Parameters:
            name: Shown to operators.
            type: A registered notification type; its templates are the content unless
                ``templates`` are given.
            audience: ``{"all": true}``, ``{"ids": [...]}``, ``{"filter": {...}}`` or
                ``{"segment": name}``, optionally with ``"exclude": [...]``; resolved
                when a run starts.
            data: The type's payload, validated now.
            channels: A subset of the type's channels (default: all of them).
            priority: ``low``, ``medium`` or ``high``; ``urgent`` is refused.
            send_rates: Messages per minute per channel.
            start_at: First run at this instant (aware).
            cron: Recurring runs, a five-field expression read in ``timezone``.
            timezone: IANA zone for ``cron``.
            end_at: No run starts at or after this instant.
            templates: The campaign's own content, channel -> locale -> part -> source
                (see :mod:`dispatcher.campaigns.content`), checked with ``data`` now.

        Raises:
            InvalidCampaignError, UnknownEventTypeError, PayloadValidationError,
            TemplateError: nothing is stored.
        """
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise InvalidCampaignError("name must be 1 to 255 characters", field="name")
        notification_type = self.catalog.get(type)
        payload = notification_type.validate(data or {})
        chosen = check_priority(priority, notification_type.priority)
        sent_on = check_channels(channels, notification_type)
        rates = check_send_rates(send_rates, sent_on)
        parsed = parse_audience(audience)
        parts = self._check_templates(templates, notification_type, sent_on, payload)
        key = content.new_key() if parts else None
        zone = check_timezone(timezone)
        check_aware(start_at, "start_at")
        check_aware(end_at, "end_at")
        now = utcnow()
        next_run = start_at
        if cron is not None:
            expression = parse_cron(cron)
            # start_at itself counts when it is an occurrence.
            after = start_at - timedelta(microseconds=1) if start_at is not None else now
            next_run = next_after(expression, ZoneInfo(zone), after)
            if next_run is None:
                raise InvalidCampaignError(f"cron {cron!r} never fires", field="cron")
        if end_at is not None and next_run is not None and next_run >= end_at:
            raise InvalidCampaignError(
                "end_at is before the first run; nothing would be sent", field="end_at"
            )
        status = CampaignStatus.SCHEDULED if next_run is not None else CampaignStatus.DRAFT
        row = {
            "name": name.strip(),
            "type": type,
            "data": payload,
            "audience": parsed.to_dict(),
            "priority": chosen,
            "start_at": start_at,
            "cron": parse_cron(cron).expression if cron is not None else None,
            "status": status.value,
            "cursor": 0,
            "totals": {},
            "channels": list(sent_on),
            "send_rates": rates,
            "timezone": zone,
            "end_at": end_at,
            "next_run_at": next_run,
            "created_at": now,
            "updated_at": now,
            "content": key,
        }
        with self.store.session(write=True) as session:
            conn = session.connection()
            if parsed.segment is not None:
                segments.check_exists(conn, parsed.segment)
            campaign_id = conn.execute(insert(_C).returning(_C.c.id), row).scalar_one()
            if key is not None:
                content.store(conn, campaign_id, key, parts)
        log.info("campaign.created", campaign_id=campaign_id, type=type, status=status.value)
        return self.get(campaign_id)

    def _check_templates(
        self,
        templates: Mapping[str, Any] | None,
        notification_type: Any,
        sent_on: Sequence[str],
        payload: Mapping[str, Any],
    ) -> list[content.Part]:
        if templates is None:
            return []
        if self._renderer is None or self._channels is None:  # pragma: no cover - the face
            raise NotImplementedError("campaign templates need a dispatcher")
        return content.check_templates(
            self._renderer(), self._channels(), notification_type, sent_on, payload, templates
        )

    # -- reading -------------------------------------------------------------------

    def get(self, campaign_id: int) -> CampaignInfo:
        """The campaign, its runs (newest first) and the newest run's progress.

        Raises:
            NotFoundError: no such campaign.
        """
        with self.store.session() as session:
            conn = session.connection()
            row = conn.execute(select(_C).where(_C.c.id == campaign_id)).one_or_none()
            if row is None:
                raise NotFoundError(f"no campaign {campaign_id}")
            runs = conn.execute(
                select(_R).where(_R.c.campaign_id == campaign_id).order_by(_R.c.id.desc())
            ).all()
            infos = [
                run_info(r, progress(conn, r.event_id) if i == 0 else {})
                for i, r in enumerate(runs)
            ]
            own = content.load(conn, campaign_id) if row.content is not None else {}
        return campaign_info(row, infos, own)

    def list(self, *, status: str | None = None, limit: int = 100) -> list[CampaignInfo]:
        """Campaigns, newest first, each with its newest run."""
        with self.store.session() as session:
            conn = session.connection()
            query = select(_C).order_by(_C.c.id.desc()).limit(limit)
            if status is not None:
                query = query.where(_C.c.status == status)
            out = []
            for row in conn.execute(query).all():
                newest = conn.execute(
                    select(_R).where(_R.c.campaign_id == row.id).order_by(_R.c.id.desc()).limit(1)
                ).first()
                runs = [run_info(newest, progress(conn, newest.event_id))] if newest else []
                out.append(campaign_info(row, runs))
        return out

    def preview(self, campaign_id: int, *, now: datetime | None = None) -> Any:
        """A dry run: who would get it on each channel, who would not and why, and a
        rendered sample per locale; writes nothing (see
        :class:`~dispatcher.campaigns.preview.Preview`)."""
        if self._preview is None:  # pragma: no cover - the face always passes one
            raise NotImplementedError("preview needs a dispatcher")
        return self._preview(self.get(campaign_id), now or utcnow())

    # -- steering ------------------------------------------------------------------

    def start(self, campaign_id: int) -> RunInfo:
        """Start a run now (a draft, or a scheduled campaign ahead of time).

        Raises:
            NotFoundError: no such campaign.
            CampaignStateError: it is cancelled, or a run of it is running or paused.
        """
        now = utcnow()
        with self.store.session(write=True) as session:
            conn = session.connection()
            campaign = self._load(conn, campaign_id)
            if campaign.status in FINAL:
                raise CampaignStateError(
                    f"campaign {campaign_id} is {campaign.status}; it cannot start",
                    status=campaign.status,
                )
            active = conn.execute(
                select(_R.c.id, _R.c.status).where(
                    _R.c.campaign_id == campaign_id,
                    _R.c.status.in_([CampaignStatus.RUNNING.value, CampaignStatus.PAUSED.value]),
                )
            ).first()
            if active is not None:
                raise CampaignStateError(
                    f"campaign {campaign_id} has a {active.status} run ({active.id}); "
                    "resume or cancel it first",
                    status=active.status,
                )
            if campaign.cron is None and campaign.next_run_at is not None:
                # Started by hand ahead of its time: beat must not start it again.
                conn.execute(update(_C).where(_C.c.id == campaign_id).values(next_run_at=None))
            run_id = start_run(
                session, self.catalog, campaign, now, now, postgres=self.store.is_postgres
            )
        if run_id is None:  # pragma: no cover - same microsecond as another start
            raise CampaignStateError(f"campaign {campaign_id} was just started", status="running")
        self.doorbell.campaign_chunk(run_id)
        return self.get(campaign_id).runs[0]

    def pause(self, campaign_id: int) -> CampaignInfo:
        """Hold the running run after its current chunk.

        Raises:
            CampaignStateError: no run is running.
        """
        return self._move(campaign_id, CampaignStatus.RUNNING, CampaignStatus.PAUSED)

    def resume(self, campaign_id: int) -> CampaignInfo:
        """Go on with a paused run from its cursor.

        Raises:
            CampaignStateError: no run is paused.
        """
        info = self._move(campaign_id, CampaignStatus.PAUSED, CampaignStatus.RUNNING)
        self.doorbell.campaign_chunk(info.runs[0].id)
        return info

    def cancel(self, campaign_id: int) -> CampaignInfo:
        """Stop for good: no chunk, no further run, and deliveries not yet sent are
        skipped with reason ``campaign_cancelled``.

        Raises:
            CampaignStateError: it is already cancelled.
        """
        now = utcnow()
        with self.store.session(write=True) as session:
            conn = session.connection()
            campaign = self._load(conn, campaign_id)
            if campaign.status in FINAL:
                raise CampaignStateError(
                    f"campaign {campaign_id} is already cancelled", status=campaign.status
                )
            conn.execute(
                update(_C)
                .where(_C.c.id == campaign_id)
                .values(status=CampaignStatus.CANCELLED.value, next_run_at=None, updated_at=now)
            )
            conn.execute(
                update(_R)
                .where(
                    _R.c.campaign_id == campaign_id,
                    _R.c.status.in_([CampaignStatus.RUNNING.value, CampaignStatus.PAUSED.value]),
                )
                .values(status=CampaignStatus.CANCELLED.value, finished_at=now, updated_at=now)
            )
            events = list(
                conn.scalars(select(_R.c.event_id).where(_R.c.campaign_id == campaign_id))
            )
            skipped = cancel_deliveries(conn, [e for e in events if e is not None], now)
        log.info("campaign.cancelled", campaign_id=campaign_id, skipped=skipped)
        return self.get(campaign_id)

    def _move(
        self, campaign_id: int, source: CampaignStatus, target: CampaignStatus
    ) -> CampaignInfo:
        now = utcnow()
        with self.store.session(write=True) as session:
            conn = session.connection()
            campaign = self._load(conn, campaign_id)
            run_id = conn.execute(
                select(_R.c.id).where(_R.c.campaign_id == campaign_id, _R.c.status == source.value)
            ).scalar()
            if run_id is None:
                raise CampaignStateError(
                    f"campaign {campaign_id} has no {source.value} run "
                    f"(campaign is {campaign.status})",
                    status=campaign.status,
                )
            conn.execute(
                update(_R)
                .where(_R.c.id == run_id, _R.c.status == source.value)
                .values(status=target.value, updated_at=now)
            )
            conn.execute(
                update(_C).where(_C.c.id == campaign_id).values(status=target.value, updated_at=now)
            )
        log.info(f"campaign.{target.value}", campaign_id=campaign_id, run_id=run_id)
        return self.get(campaign_id)

    @staticmethod
    def _load(conn: Any, campaign_id: int) -> Any:
        statement = select(_C).where(_C.c.id == campaign_id)
        if conn.dialect.name == "postgresql":
            statement = statement.with_for_update()
        row = conn.execute(statement).one_or_none()
        if row is None:
            raise NotFoundError(f"no campaign {campaign_id}")
        return row
