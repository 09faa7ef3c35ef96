"""Web push: encrypted messages to every browser a subscriber allowed, via VAPID.

The channel (what is sent, to which devices, what an answer means) is kept apart from
the push services that carry it (FCM, Mozilla autopush, Apple): any RFC 8030 service
works. Per process there is one aiohttp session, so connections to a push service are
reused across batches; a batch's pushes (every device of every message) run
concurrently, at most ``DISPATCHER_PUSH_CONCURRENCY`` at a time.

pywebpush defaults that lose messages or hang are overridden on every call: ``ttl``
(default 0, "drop if the device is offline") and ``timeout`` (none for ``webpush()``).
VAPID headers come from :class:`~dispatcher.channels.web_push.vapid.VapidSigner`,
signed once per origin.
"""

from __future__ import annotations

import asyncio
import email.utils
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

import aiohttp
from pywebpush import WebPusher, WebPushException
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from dispatcher import log
from dispatcher.channels.base import Channel, Message, Outcome, RetryPolicy
from dispatcher.channels.web_push.payload import build_payload, topic, urgency
from dispatcher.channels.web_push.vapid import VapidKey, VapidSigner, origin_of
from dispatcher.clock import utcnow
from dispatcher.db.models import PushSubscription
from dispatcher.enums import Reason
from dispatcher.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from dispatcher.subscribers.recipient import Recipient

if TYPE_CHECKING:
    from dispatcher.catalog import NotificationType

#: Rows per ``IN (...)`` list, well under SQLite's and PostgreSQL's parameter limits.
_CHUNK = 500
#: A push service asking us to wait longer than this is treated as asking for a day.
_MAX_RETRY_AFTER = timedelta(days=1)
#: How much of a push service's error body is kept in a delivery's detail.
_MAX_BODY = 300


class _Result(Enum):
    SENT = "sent"
    GONE = "gone"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class _Device:
    id: int
    subscriber_id: int
    origin: str
    info: dict[str, Any]


@dataclass(frozen=True)
class _Attempt:
    device: _Device
    result: _Result
    status: int | None = None
    detail: str = ""
    retry_after: timedelta | None = None


class _Breaker:
    """Push-service origins that keep failing within one batch.

    After :attr:`THRESHOLD` timeouts or connection errors (and more of them than
    successes), the origin's remaining pushes in the batch become retries at once: a
    silent service would otherwise hold a batch of 500 for ``500 / concurrency x
    timeout`` seconds, far past the delivery lease.
    """

    THRESHOLD = 3

    def __init__(self) -> None:
        self.failures: dict[str, int] = defaultdict(int)
        self.successes: dict[str, int] = defaultdict(int)

    def open(self, origin: str) -> bool:
        failures = self.failures[origin]
        return failures >= self.THRESHOLD and failures > self.successes[origin]

    def record(self, origin: str, *, reached: bool) -> None:
        if reached:
            self.successes[origin] += 1
        else:
            self.failures[origin] += 1


class WebPushChannel(Channel):
    """Sends each message to all of the subscriber's push subscriptions."""

    name = "web_push"
    parts = ("title", "body", "url", "icon", "tag")
    optional_parts = ("icon", "tag")
    link_parts = {"url": "url"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.push = self.settings.push
        self._session: aiohttp.ClientSession | None = None
        self._limit: asyncio.Semaphore | None = None
        self._signer: VapidSigner | None = None
        self._timeout = aiohttp.ClientTimeout(total=self.push.timeout)
        #: Origins that stopped answering, kept across one batch's groups.
        self._batch_breaker: _Breaker | None = None

    def is_configured(self) -> bool:
        return self.push.is_configured()

    def begin_batch(self) -> None:
        self._batch_breaker = _Breaker()

    def end_batch(self) -> None:
        self._batch_breaker = None

    @property
    def in_flight(self) -> int:
        return self.push.concurrency

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.push.max_attempts,
            base_seconds=self.push.backoff_base_seconds,
            cap_seconds=self.push.backoff_cap_seconds,
        )

    @property
    def signer(self) -> VapidSigner:
        """This process's VAPID signer (and its per-origin cache)."""
        if self._signer is None:
            self._signer = VapidSigner(VapidKey.from_settings(self.push), self.push.vapid_subject)
        return self._signer

    def missing_addresses(self, recipients: Sequence[Recipient], session: Session) -> set[int]:
        """Recipients with no push subscription at all, in one query per 500."""
        wanted = {r.id for r in recipients}
        found: set[int] = set()
        for chunk in _chunks(sorted(wanted)):
            found.update(
                session.scalars(
                    select(PushSubscription.subscriber_id)
                    .where(PushSubscription.subscriber_id.in_(chunk))
                    .distinct()
                )
            )
        return wanted - found

    def address_missing(self, recipient: Recipient) -> bool:
        with self.context.store.session() as session:
            return bool(self.missing_addresses([recipient], session))

    def ttl_for(self, type: NotificationType) -> int:
        """Seconds a push service keeps the message for an offline device."""
        if type.push_ttl_seconds is not None:
            return max(0, type.push_ttl_seconds)  # a type may choose 0 on purpose
        return self.push.default_ttl_seconds

    async def open(self) -> None:
        # Settings refuse a TTL, timeout or concurrency of 0 (pywebpush's TTL default of 0
        # drops every push to an offline device; no timeout hangs on a silent service).
        self.signer  # noqa: B018 - fail on a bad key before the first batch, not inside it
        if self._session is None or self._session.closed:
            self._limit = asyncio.Semaphore(self.push.concurrency)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.push.concurrency),
                timeout=self._timeout,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, messages: Sequence[Message]) -> Sequence[Outcome]:
        await self.open()
        devices = self._devices({m.recipient.id for m in messages})
        outcomes: list[Outcome] = []
        work: list[tuple[Message, list[asyncio.Task[_Attempt]]]] = []
        breaker = self._batch_breaker or _Breaker()
        async with asyncio.TaskGroup() as group:
            for m in messages:
                mine = devices.get(m.recipient.id, [])
                if not mine:
                    outcomes.append(Outcome.failed(m.delivery_id, _no_devices()))
                    continue
                try:
                    payload = build_payload(
                        m.content,
                        notification_id=m.notification_id,
                        type_name=m.type.name,
                        priority=m.priority,
                    )
                except DeliveryError as exc:
                    outcomes.append(Outcome.failed(m.delivery_id, exc))
                    continue
                headers = {
                    "TTL": str(self.ttl_for(m.type)),
                    "Urgency": urgency(m.priority, realtime=m.realtime),
                    "Topic": topic(m.notification_id),
                }
                tasks = [
                    group.create_task(
                        self._push(d, payload, headers, self.ttl_for(m.type), breaker)
                    )
                    for d in mine
                ]
                work.append((m, tasks))
        attempts = [(m, [t.result() for t in tasks]) for m, tasks in work]
        self._record_devices(a for _, results in attempts for a in results)
        outcomes.extend(_outcome(m, results) for m, results in attempts)
        return outcomes

    async def _push(
        self,
        device: _Device,
        payload: bytes,
        headers: dict[str, str],
        ttl: int,
        breaker: _Breaker,
    ) -> _Attempt:
        assert self._limit is not None and self._session is not None
        async with self._limit:
            if breaker.open(device.origin):
                return _Attempt(
                    device,
                    _Result.TRANSIENT,
                    detail=f"{device.origin} kept failing in this batch; not tried",
                )
            request_headers = {
                **headers,
                "Authorization": self.signer.authorization_for_origin(device.origin),
            }
            try:
                pusher = WebPusher(device.info, aiohttp_session=self._session)
                response = await pusher.send_async(
                    payload,
                    request_headers,
                    ttl=ttl,
                    content_encoding="aes128gcm",
                    timeout=self._timeout,
                )
                body = await response.text(errors="replace")
            except TimeoutError:
                breaker.record(device.origin, reached=False)
                return _Attempt(
                    device, _Result.TRANSIENT, detail=f"timeout after {self.push.timeout:g}s"
                )
            except aiohttp.ClientError as exc:
                breaker.record(device.origin, reached=False)
                return _Attempt(device, _Result.TRANSIENT, detail=f"{type(exc).__name__}: {exc}")
            except UnicodeDecodeError:
                # pywebpush decodes the answer strictly; a garbled body is the service's
                # problem, not the device's.
                breaker.record(device.origin, reached=False)
                return _Attempt(device, _Result.TRANSIENT, detail="undecodable response body")
            except (WebPushException, ValueError) as exc:
                # A stored subscription pywebpush cannot use (keys written around the
                # API); this device can never succeed.
                return _Attempt(device, _Result.PERMANENT, detail=f"unusable subscription: {exc}")
        breaker.record(device.origin, reached=True)
        return _classify(device, response.status, response.headers.get("Retry-After"), body)

    def _devices(self, subscriber_ids: Iterable[int]) -> dict[int, list[_Device]]:
        found: dict[int, list[_Device]] = defaultdict(list)
        with self.context.store.session() as session:
            for chunk in _chunks(sorted(set(subscriber_ids))):
                rows = session.execute(
                    select(
                        PushSubscription.id,
                        PushSubscription.subscriber_id,
                        PushSubscription.endpoint,
                        PushSubscription.p256dh,
                        PushSubscription.auth,
                    )
                    .where(PushSubscription.subscriber_id.in_(chunk))
                    .order_by(PushSubscription.id)
                )
                for sid, owner, endpoint, p256dh, auth in rows:
                    info = {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}
                    found[owner].append(_Device(sid, owner, origin_of(endpoint), info))
        return found

    def _record_devices(self, attempts: Iterable[_Attempt]) -> None:
        """Forget devices the push service called gone; note when others last worked."""
        gone: set[int] = set()
        worked: set[int] = set()
        for a in attempts:
            if a.result is _Result.GONE:
                gone.add(a.device.id)
            elif a.result is _Result.SENT:
                worked.add(a.device.id)
        if not gone and not worked:
            return
        now = utcnow()
        table = PushSubscription.__table__
        with self.context.store.session(write=True) as session:
            for chunk in _chunks(sorted(gone)):
                session.execute(delete(table).where(table.c.id.in_(chunk)))  # type: ignore[arg-type]
            for chunk in _chunks(sorted(worked)):
                session.execute(
                    update(table).where(table.c.id.in_(chunk)).values(last_success_at=now)  # type: ignore[arg-type]
                )
        for device_id in sorted(gone):
            log.info("web_push.subscription_gone", push_subscription_id=device_id)


def _classify(device: _Device, status: int, retry_after: str | None, body: str) -> _Attempt:
    text = " ".join(body.split())[:_MAX_BODY]
    if status in (200, 201, 202):
        return _Attempt(device, _Result.SENT, status)
    if status in (404, 410):
        return _Attempt(device, _Result.GONE, status, text)
    if status == 429 or status >= 500:
        return _Attempt(device, _Result.TRANSIENT, status, text, parse_retry_after(retry_after))
    return _Attempt(device, _Result.PERMANENT, status, text)


def _outcome(m: Message, attempts: Sequence[_Attempt]) -> Outcome:
    counts: dict[_Result, int] = defaultdict(int)
    for a in attempts:
        counts[a.result] += 1
    if counts[_Result.SENT]:
        detail = f"{counts[_Result.SENT]} of {len(attempts)} devices"
        if counts[_Result.GONE]:
            detail += f"; {counts[_Result.GONE]} gone"
        return Outcome.sent(m.delivery_id, provider_id=topic(m.notification_id), detail=detail)
    if counts[_Result.GONE] == len(attempts):
        return Outcome.failed(m.delivery_id, _no_devices())
    transient = [a for a in attempts if a.result is _Result.TRANSIENT]
    if transient:
        waits = [a.retry_after for a in transient if a.retry_after is not None]
        first = transient[0]
        status = f"push service answered {first.status}" if first.status else "push failed"
        return Outcome.failed(
            m.delivery_id,
            TransientDeliveryError(
                f"{status}: {first.detail}".rstrip(": "),
                reason="push_throttled" if first.status == 429 else "push_unavailable",
                retry_after=max(waits) if waits else None,
            ),
        )
    first = next(a for a in attempts if a.result is _Result.PERMANENT)
    return Outcome.failed(
        m.delivery_id,
        PermanentDeliveryError(
            f"push service answered {first.status}: {first.detail or '(no body)'}",
            reason=Reason.REJECTED,
        ),
    )


def _no_devices() -> PermanentDeliveryError:
    return PermanentDeliveryError(
        "every push subscription of the subscriber is gone", reason=Reason.NO_DEVICES
    )


def parse_retry_after(value: str | None) -> timedelta | None:
    """``Retry-After`` as seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        wait = when - utcnow()
    return max(timedelta(0), min(wait, _MAX_RETRY_AFTER))


def _chunks(values: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(values), _CHUNK):
        yield list(values[start : start + _CHUNK])
