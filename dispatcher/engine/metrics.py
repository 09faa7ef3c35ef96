"""Prometheus metrics computed from the database and the broker at scrape time.

Workers run prefork, so per-process counters would need ``prometheus_client``'s
multiprocess mode (a directory of mmap files per worker, cleaned on restart). The
database already holds every outcome: this collector reads it when Prometheus scrapes,
in a few ``GROUP BY`` queries, so any process (the gateway serves it) can answer and
no worker keeps state. The figures are of the rows kept (the purge drops old ones), so
the delivery series are gauges, and the latency histogram covers deliveries created in
the last ``latency_window`` only (a fixed window, found by the ``created_at`` index,
keeps its cost flat as the table grows).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Float, case, cast, func, select

from dispatcher import log, names
from dispatcher.brokers import BROKER_ERRORS, queue_depths
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Campaign, Delivery, Event, Notification
from dispatcher.enums import DeliveryStatus, EventStatus

#: Histogram buckets for event-created → sent, in seconds.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)


class DatabaseCollector(Collector):
    """Deliveries, latency, rows waiting, queue depths and campaign progress."""

    def __init__(
        self,
        store: Store,
        broker_url: str,
        *,
        queues: Sequence[str] = names.ALL,
        latency_window: timedelta = timedelta(hours=24),
    ) -> None:
        self.store = store
        self.broker_url = broker_url
        self.queues = tuple(queues)
        self.latency_window = latency_window

    def describe(self) -> list[Metric]:
        # Never run queries when registering.
        return []

    def _seconds(self) -> Any:
        if self.store.is_postgres:
            return cast(func.extract("epoch", Delivery.sent_at - Event.created_at), Float)
        return (func.julianday(Delivery.sent_at) - func.julianday(Event.created_at)) * 86400.0

    def collect(self) -> Iterator[Metric]:
        deliveries = GaugeMetricFamily(
            "dispatcher_deliveries",
            "Delivery rows kept, by channel, type, status and reason.",
            labels=["channel", "type", "status", "reason"],
        )
        rows = GaugeMetricFamily(
            "dispatcher_delivery_rows",
            "Deliveries waiting or claimed: pending (due), scheduled (later), sending "
            "(claimed by a worker).",
            labels=["status"],
        )
        events = GaugeMetricFamily(
            "dispatcher_pending_events", "Events waiting for fan-out (or for send_at)."
        )
        waiting = {s: 0 for s in ("pending", "scheduled", "sending")}
        since = utcnow() - self.latency_window
        # Materialized: SQLite would otherwise inline the expression and parse both
        # timestamps again for every bucket it is compared with.
        sent = (
            select(Delivery.channel.label("channel"), self._seconds().label("seconds"))
            .join(Notification, Notification.id == Delivery.notification_id)
            .join(Event, Event.id == Notification.event_id)
            .where(Delivery.created_at >= since, Delivery.status == DeliveryStatus.SENT)
            .cte("sent_latency")
            .prefix_with("MATERIALIZED")
        )
        bucket = case(
            *((sent.c.seconds <= b, i) for i, b in enumerate(LATENCY_BUCKETS)),
            else_=len(LATENCY_BUCKETS),
        ).label("bucket")
        latency_stmt = select(
            sent.c.channel, bucket, func.count(), func.coalesce(func.sum(sent.c.seconds), 0.0)
        ).group_by(sent.c.channel, bucket)
        active = select(Campaign.id).where(Campaign.status.not_in(("done", "cancelled")))
        campaign_stmt = (
            select(Campaign.id, Campaign.name, Delivery.status, func.count(Delivery.id))
            .join(Event, Event.campaign_id == Campaign.id)
            .join(Notification, Notification.event_id == Event.id)
            .join(Delivery, Delivery.notification_id == Notification.id)
            .group_by(Campaign.id, Campaign.name, Delivery.status)
        )
        with self.store.session() as s:
            for channel, type_name, status, reason, n in s.execute(
                select(
                    Delivery.channel,
                    Notification.type,
                    Delivery.status,
                    Delivery.reason,
                    func.count(),
                )
                .join(Notification, Notification.id == Delivery.notification_id)
                .group_by(Delivery.channel, Notification.type, Delivery.status, Delivery.reason)
            ):
                deliveries.add_metric([channel, type_name, status.value, reason or ""], n)
                if status.value in waiting:
                    waiting[status.value] += int(n)
            events.add_metric(
                [],
                s.scalar(
                    select(func.count())
                    .select_from(Event)
                    .where(Event.status == EventStatus.PENDING)
                )
                or 0,
            )
            latency = HistogramMetricFamily(
                "dispatcher_delivery_latency_seconds",
                "Event created → sent, per channel, for deliveries created in the last "
                f"{int(self.latency_window.total_seconds())} s.",
                labels=["channel"],
            )
            per_channel: dict[str, tuple[list[int], list[float]]] = {}
            for channel, index, n, total in s.execute(latency_stmt):
                counts, sums = per_channel.setdefault(
                    channel, ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
                )
                counts[int(index)] += int(n)
                sums[0] += float(total)
            for channel, (counts, sums) in sorted(per_channel.items()):
                cumulative, running = [], 0
                for bound, n in zip((*map(_le, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                    running += n
                    cumulative.append((bound, float(running)))
                latency.add_metric([channel], cumulative, sum_value=sums[0])
            campaign = GaugeMetricFamily(
                "dispatcher_campaign_deliveries",
                "Deliveries of running or scheduled campaigns, by status.",
                labels=["campaign_id", "campaign", "status"],
            )
            # Most of the time no campaign runs: skip the join (events by campaign_id).
            ids = list(s.scalars(active))
            if ids:
                for campaign_id, name, state, n in s.execute(
                    campaign_stmt.where(Campaign.id.in_(ids))
                ):
                    campaign.add_metric([str(campaign_id), name, state.value], n)
        for waiting_status, n in waiting.items():
            rows.add_metric([waiting_status], n)
        yield deliveries
        yield rows
        yield events
        yield latency
        yield campaign
        yield self._queue_depths()

    def _queue_depths(self) -> Metric:
        depth = GaugeMetricFamily(
            "dispatcher_queue_depth",
            "Messages waiting in each broker queue (Redis list length, RabbitMQ message count).",
            labels=["queue"],
        )
        try:
            lengths = queue_depths(self.broker_url, self.queues)
        except BROKER_ERRORS as exc:
            log.warning("metrics.broker_unavailable", error=type(exc).__name__)
            return depth
        for queue, n in lengths.items():
            depth.add_metric([queue], n)
        return depth


def _le(bound: float) -> str:
    return repr(float(bound))
