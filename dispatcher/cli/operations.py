"""Day-to-day operator commands: send, deliveries (list, retry), stats."""

from __future__ import annotations

import json
from typing import Any

import click
import redis
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select, update

from dispatcher import names
from dispatcher.cli.core import open_dispatcher
from dispatcher.clock import utcnow
from dispatcher.db.models import Delivery, Notification, Subscriber
from dispatcher.enums import DeliveryStatus, Reason
from dispatcher.errors import DispatcherError

console = Console()


@click.command()
@click.argument("type_name", metavar="TYPE")
@click.option("--to", "to", multiple=True, required=True, help="Subscriber id (repeatable).")
@click.option("--data", default=None, help="Payload as JSON (default: the type's example).")
@click.option("--priority", default=None, help="low, medium, high or urgent.")
@click.option("--key", "idempotency_key", default=None, help="Idempotency key.")
def send(
    type_name: str,
    to: tuple[str, ...],
    data: str | None,
    priority: str | None,
    idempotency_key: str | None,
) -> None:
    """Dispatch one event, as an app would."""
    with open_dispatcher() as d:
        try:
            payload: dict[str, Any] = (
                json.loads(data) if data is not None else dict(d.catalog.get(type_name).example)
            )
            receipt = d.notify(
                type_name,
                to=list(to),
                data=payload,
                priority=priority,
                idempotency_key=idempotency_key,
            )
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"--data is not valid JSON: {exc}") from None
        except DispatcherError as exc:
            raise click.ClickException(str(exc)) from None
        state = "stored" if receipt.created else "already stored (same idempotency key)"
        click.echo(
            f"event {receipt.id} {state}: {receipt.type} to {receipt.recipients} "
            f"recipient(s), priority {receipt.priority.value}"
        )


@click.group()
def deliveries() -> None:
    """List deliveries and retry failed ones."""


@deliveries.command("list")
@click.option("--status", type=click.Choice([s.value for s in DeliveryStatus]), default=None)
@click.option("--channel", default=None)
@click.option("--subscriber", default=None, help="Subscriber id.")
@click.option("--limit", default=50, show_default=True)
def list_deliveries(
    status: str | None, channel: str | None, subscriber: str | None, limit: int
) -> None:
    """The newest deliveries, with status, reason and attempts."""
    with open_dispatcher() as d, d.store.session() as s:
        stmt = (
            select(Delivery, Notification.type, Subscriber.external_id)
            .join(Notification, Notification.id == Delivery.notification_id)
            .join(Subscriber, Subscriber.id == Notification.subscriber_id)
            .order_by(Delivery.id.desc())
            .limit(limit)
        )
        if status:
            stmt = stmt.where(Delivery.status == DeliveryStatus(status))
        if channel:
            stmt = stmt.where(Delivery.channel == channel)
        if subscriber:
            stmt = stmt.where(Subscriber.external_id == subscriber)
        table = Table()
        for col in (
            "id",
            "notification",
            "subscriber",
            "type",
            "channel",
            "status",
            "reason",
            "attempts",
            "scheduled_for",
            "detail",
        ):
            table.add_column(col)
        for row, type_name, external_id in s.execute(stmt):
            table.add_row(
                str(row.id),
                str(row.notification_id),
                external_id,
                type_name,
                row.channel,
                row.status.value,
                row.reason or "",
                str(row.attempts),
                row.scheduled_for.strftime("%Y-%m-%d %H:%M:%S")
                if row.status in (DeliveryStatus.SCHEDULED, DeliveryStatus.PENDING)
                else "",
                (row.detail or "")[:80],
            )
        console.print(table)


@deliveries.command("retry")
@click.argument("ids", nargs=-1, type=int, required=True)
def retry(ids: tuple[int, ...]) -> None:
    """Send failed deliveries again (attempts start over)."""
    now = utcnow()
    with open_dispatcher() as d:
        with d.store.session(write=True) as s:
            rows = list(
                s.execute(
                    update(Delivery)
                    .where(Delivery.id.in_(ids), Delivery.status == DeliveryStatus.FAILED)
                    .values(
                        status=DeliveryStatus.PENDING,
                        attempts=0,
                        scheduled_for=now,
                        updated_at=now,
                        reason=None,
                        detail=None,
                    )
                    .returning(Delivery.id, Delivery.priority)
                )
            )
        for delivery_id, priority in rows:
            d.doorbell.deliver([delivery_id], priority)
        skipped = sorted(set(ids) - {r[0] for r in rows})
        click.echo(
            f"requeued {len(rows)} deliver{'y' if len(rows) == 1 else 'ies'}"
            + (f"; not failed or unknown: {', '.join(map(str, skipped))}" if skipped else "")
        )


@click.command()
def stats() -> None:
    """Deliveries by channel and status, and the length of each queue."""
    with open_dispatcher() as d:
        with d.store.session() as s:
            counts = s.execute(
                select(Delivery.channel, Delivery.status, func.count()).group_by(
                    Delivery.channel, Delivery.status
                )
            ).all()
            reasons = s.execute(
                select(Delivery.reason, func.count())
                .where(Delivery.reason.is_not(None))
                .group_by(Delivery.reason)
            ).all()
        statuses = [s.value for s in DeliveryStatus]
        table = Table(title="Deliveries", title_justify="left")
        table.add_column("channel")
        for name in statuses:
            table.add_column(name, justify="right")
        by_channel: dict[str, dict[str, int]] = {}
        for channel, status, n in counts:
            by_channel.setdefault(channel, {})[status.value] = n
        for channel, row in sorted(by_channel.items()):
            table.add_row(channel, *(str(row.get(name, 0)) for name in statuses))
        console.print(table)
        if reasons:
            known = {r.value for r in Reason}
            console.print(
                "Reasons: "
                + ", ".join(
                    f"{reason}={n}" + ("" if reason in known else "?") for reason, n in reasons
                )
            )
        try:
            client = redis.Redis.from_url(d.settings.broker_url, socket_connect_timeout=2)
            lengths = {name: client.llen(name) for name in names.ALL}
            console.print("Queues: " + ", ".join(f"{k}={v}" for k, v in lengths.items()))
        except redis.RedisError as exc:
            console.print(f"[yellow]Broker not answering: {type(exc).__name__}[/]")
