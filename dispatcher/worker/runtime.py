"""The :class:`Runtime`: what one worker process builds to run fan-out, delivery and
beat's periodic work.

A Celery task is a thin wrapper over one of its methods (:mod:`dispatcher.worker.tasks`);
tests and tools call the same methods directly. The runtime takes its store, catalog,
channels and policies from a :class:`~dispatcher.Dispatcher`, so a worker knows the same
types and channels as the app that rang it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import cached_property

import redis
from sqlalchemy.exc import SQLAlchemyError

from dispatcher import log, names
from dispatcher.campaigns.runs import ChunkResult, run_chunk
from dispatcher.campaigns.tick import TickResult, tick
from dispatcher.clock import utcnow
from dispatcher.dispatcher import Dispatcher
from dispatcher.engine.bulk_fanout import BulkFanout
from dispatcher.engine.delivery import Deliverer, DeliverReport
from dispatcher.engine.digests import FlushResult, flush_digests
from dispatcher.engine.doorbell import Doorbell
from dispatcher.engine.drain import DrainResult, drain
from dispatcher.engine.fanout import FanoutResult, fanout
from dispatcher.engine.liveness import Liveness
from dispatcher.engine.on_time import OnTimeResult, ring_due_soon
from dispatcher.engine.purge import PurgeResult, purge
from dispatcher.engine.rehearsal import rehearse
from dispatcher.engine.render_once import RenderOnceComposer
from dispatcher.engine.sweep import SweepResult, sweep, take_back_gone
from dispatcher.enums import Priority
from dispatcher.policies import PolicyChain

#: Campaign chunk sizes when ``campaign_chunk_size`` is unset (measured with bench.campaign:
#: on PostgreSQL fewer, larger statements win; on SQLite a chunk holds the writer lock,
#: and 1,000 was both faster and kinder to urgent events than 5,000).
CHUNK_POSTGRES = 5000
CHUNK_SQLITE = 1000


class Runtime:
    """The worker side of a :class:`~dispatcher.Dispatcher`.

    Create one per process, after fork (it opens database, Redis and channel
    connections on first use), and :meth:`close` it when the process is done.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.settings = dispatcher.settings

    @cached_property
    def doorbell(self) -> Doorbell:
        """Rings delivery tasks from fan-out, and drains from the sweep."""
        s = self.settings
        return Doorbell.for_settings(s)

    @cached_property
    def liveness(self) -> Liveness:
        """This process's liveness key, and the sweep's view of the others'."""
        s = self.settings
        return Liveness(s.redis_url, s.redis_prefix, seconds=s.liveness_seconds)

    @cached_property
    def policies(self) -> PolicyChain:
        """The send-time policies, set up for this process."""
        policies = list(self.dispatcher.policies)
        for policy in policies:
            policy.setup(self.settings)
        return PolicyChain(policies)

    @cached_property
    def deliverer(self) -> Deliverer:
        d = self.dispatcher
        return Deliverer(
            d.store,
            d.catalog,
            d.renderer,
            d.channels,
            self.policies,
            lease=timedelta(seconds=self.settings.lease_seconds),
            default_locale=self.settings.default_locale,
            liveness=self.liveness,
            record_group_size=self.settings.record_group_size,
        )

    def fanout(self, event_id: int) -> FanoutResult:
        """Fan event ``event_id`` out now (what a plain ``dispatcher.fanout`` runs)."""
        d = self.dispatcher
        return fanout(
            d.store,
            d.catalog,
            self.doorbell,
            event_id,
            batch_size=self.settings.delivery_batch_size,
            deliverer=self.deliverer,
            inline_limit=self.settings.inline_delivery_limit,
            in_bulk=self.in_bulk,
        )

    @cached_property
    def in_bulk(self) -> BulkFanout:
        """When a direct event's fan-out goes set-based, with the campaigns' deliverer."""
        return BulkFanout(self.bulk_deliverer, self.settings.bulk_fanout_threshold)

    def drain(
        self,
        priority: Priority | str,
        *,
        bulk: bool = False,
        first: int | None = None,
        holds_latch: bool = True,
        slot: int = 0,
    ) -> DrainResult:
        """Fan out event ``first`` and every other due event of ``priority`` (campaign
        events if ``bulk``): what a draining ``dispatcher.fanout`` runs."""
        d = self.dispatcher
        return drain(
            d.store,
            d.catalog,
            self.doorbell,
            Priority(priority),
            bulk=bulk,
            first=first,
            holds_latch=holds_latch,
            slot=slot,
            batch_size=self.settings.delivery_batch_size,
            deliverer=self.deliverer,
            inline_limit=self.settings.inline_delivery_limit,
            in_bulk=self.in_bulk,
        )

    @cached_property
    def bulk_deliverer(self) -> Deliverer:
        """A deliverer whose composer renders an event's content once per locale when its
        templates read nothing of the recipient (campaign runs, large direct events)."""
        d = self.dispatcher
        deliverer = Deliverer(
            d.store,
            d.catalog,
            d.renderer,
            d.channels,
            self.policies,
            lease=timedelta(seconds=self.settings.lease_seconds),
            default_locale=self.settings.default_locale,
        )
        deliverer.composer = RenderOnceComposer(deliverer.composer)
        return deliverer

    def campaign_chunk(self, run_id: int) -> ChunkResult:
        """Create, decide and send the next chunk of campaign run ``run_id``, then ring
        the chunk after it (what ``dispatcher.campaign_chunk`` runs)."""
        now = utcnow()
        result, batch, pings = run_chunk(
            self.dispatcher.store,
            self.dispatcher.catalog,
            self.bulk_deliverer,
            run_id,
            chunk_size=self.settings.campaign_chunk_size
            or (CHUNK_POSTGRES if self.dispatcher.store.is_postgres else CHUNK_SQLITE),
            now=now,
        )
        if pings is not None:
            pings.publish()
        # The chunk's rows are committed: the next chunk may start. Chunks of one run
        # never overlap in the database (each holds the run's lock), so an in-app-only
        # run keeps one pool process busy at a time and leaves the others free. A chunk
        # with messages to send (email, push) rings the next one first, so that its
        # sending, which waits on the provider, overlaps the next chunk's work: such a
        # run may keep every pool process of its worker busy, which is why urgent traffic
        # has a worker of its own (docker-compose.yml).
        if result.more and batch is not None:
            self.doorbell.campaign_chunk(run_id)
        if batch is not None:
            self.bulk_deliverer.send(batch, now)
        elif result.more:
            self.doorbell.campaign_chunk(run_id)
        return result

    def campaign_tick(self) -> TickResult:
        """Start due campaign runs, ring stalled ones (what ``dispatcher.campaign_tick``
        runs)."""
        return tick(
            self.dispatcher.store,
            self.dispatcher.catalog,
            self.doorbell,
            now=utcnow(),
            stall=timedelta(seconds=self.settings.campaign_stall_seconds),
        )

    def scheduled_tick(self) -> OnTimeResult:
        """Ring scheduled events due within the next second for their time (what
        ``dispatcher.scheduled_tick`` runs)."""
        return ring_due_soon(self.dispatcher.store, self.doorbell)

    def flush_digests(self) -> FlushResult:
        """Send the digests whose windows have closed (what ``dispatcher.flush_digests``
        runs)."""
        return flush_digests(self.dispatcher.store, self.deliverer)

    def deliver(self, delivery_ids: Iterable[int]) -> DeliverReport:
        """Claim and send deliveries now (what ``dispatcher.deliver`` runs).

        First, when it is this process's turn, take back the claims of processes that
        are gone: the sweep does it too, but rides the maintenance queue, which a worker
        busy with long batches reads late."""
        if self.liveness.my_turn():
            try:
                take_back_gone(
                    self.dispatcher.store,
                    self.doorbell,
                    self.liveness,
                    batch_size=self.settings.delivery_batch_size,
                )
            except (SQLAlchemyError, redis.RedisError) as exc:  # the sweep will do it
                log.warning("sweep.take_back_failed", error=type(exc).__name__)
        return self.deliverer.deliver(list(delivery_ids))

    def sweep(self) -> SweepResult:
        """Re-ring due work now (what ``dispatcher.sweep`` runs)."""
        return sweep(
            self.dispatcher.store,
            self.doorbell,
            grace=timedelta(seconds=self.settings.sweep_grace_seconds),
            batch_size=self.settings.delivery_batch_size,
            liveness=self.liveness,
        )

    def mark_swept(self) -> None:
        """Record that a sweep ran now (:func:`dispatcher.names.sweep_heartbeat`): the
        sign ``dispatcher doctor`` reads that beat and a maintenance worker are alive."""
        key = names.sweep_heartbeat(self.settings.redis_prefix)
        try:
            self.doorbell.latch.client.set(
                key, utcnow().isoformat(), ex=names.SWEEP_HEARTBEAT_SECONDS
            )
        except redis.RedisError as exc:
            log.warning("sweep.heartbeat_failed", error=type(exc).__name__)

    def purge(self) -> PurgeResult:
        """Delete finished events older than ``retention_days`` (what ``dispatcher.purge``
        runs)."""
        return purge(self.dispatcher.store, retention=timedelta(days=self.settings.retention_days))

    def warm(self) -> None:
        """Open what the first task would otherwise open (a database connection, the
        broker's and Redis' connections, the channels) and compile every template this
        worker's types can render in the default locale, so the first event after a
        worker starts is as fast as the next ones.

        Best effort: what cannot be warmed now (a database or broker still starting)
        is opened by the first task that needs it, as before.
        """
        started = time.monotonic()
        d = self.dispatcher
        steps: list[tuple[str, Callable[[], object]]] = [
            ("database", d.store.ping),
            ("deliverer", lambda: self.deliverer),
            ("broker", self._warm_broker),
            ("redis", lambda: self.doorbell.latch.client.ping()),
            ("channels", self._warm_channels),
            ("templates", self._warm_templates),
            ("rehearsal", self._rehearse),
        ]
        failed = []
        for name, step in steps:
            try:
                step()
            except Exception as exc:  # the first task opens it instead
                failed.append(name)
                log.warning("worker.warm_failed", step=name, error=type(exc).__name__)
        took = round((time.monotonic() - started) * 1000, 1)
        log.info("worker.warmed", ms=took, failed=",".join(failed) or None)

    def _rehearse(self) -> None:
        d = self.dispatcher
        rehearse(d.store, d.catalog, self.deliverer, self.settings.inline_delivery_limit)
        self.liveness.beat()  # the first inline claim's key, opened now

    def _warm_broker(self) -> None:
        app = self.doorbell.app
        with app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=1)

    def _warm_channels(self) -> None:
        names_used = {c for t in self.dispatcher.catalog for c in t.channels}
        for name in sorted(names_used):
            channel = self.dispatcher.channels.get(name)
            if channel is not None and channel.is_configured():
                channel.warm()

    def _warm_templates(self) -> None:
        d = self.dispatcher
        locale = self.settings.default_locale
        for notification_type in d.catalog:
            for name in notification_type.channels:
                channel = d.channels.get(name)
                if channel is None:
                    continue
                for part in (*channel.parts, *channel.optional_parts):
                    found = d.renderer.find(notification_type.name, name, part, locale)
                    if found is not None:
                        d.renderer.load(found, part)

    def close(self) -> None:
        """Close the policies' clients and the doorbell's latch; the dispatcher closes
        its own connections."""
        if "policies" in self.__dict__:
            for policy in self.policies.policies:
                policy.close()
        if "doorbell" in self.__dict__:
            self.doorbell.latch.close()
        if "liveness" in self.__dict__:
            self.liveness.close()
