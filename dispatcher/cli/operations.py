"""Day-to-day operator commands: send, deliveries (list, retry), stats."""

from __future__ import annotations

import json
from typing import Any

import click
import redis
from rich.console import Console
from rich.table import Table

from dispatcher import names
from dispatcher.cli.core import open_dispatcher
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
    with open_dispatcher() as d:
        rows = d.deliveries.list(
            status=status, channel=channel, subscriber_id=subscriber, limit=limit
        )
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
        for row in rows:
            table.add_row(
                str(row.id),
                str(row.notification_id),
                row.subscriber_id,
                row.type,
                row.channel,
                row.status.value,
                row.reason or "",
                str(row.attempts),
                row.scheduled_for.strftime("%Y-%m-%d %H:%M:%S")
                if row.scheduled_for is not None
                and row.status in (DeliveryStatus.SCHEDULED, DeliveryStatus.PENDING)
                else "",
                (row.detail or "")[:80],
            )
        console.print(table)


@deliveries.command("retry")
@click.argument("ids", nargs=-1, type=int, required=True)
def retry(ids: tuple[int, ...]) -> None:
    """Send failed deliveries again (attempts start over; ``explain`` shows the retry)."""
    with open_dispatcher() as d:
        result = d.deliveries.retry(ids)
        n = len(result.requeued)
        skipped = result.skipped
        click.echo(
            f"requeued {n} deliver{'y' if n == 1 else 'ies'}"
            + (f"; not failed or unknown: {', '.join(map(str, skipped))}" if skipped else "")
        )


@click.command()
def stats() -> None:
    """Deliveries by channel and status, and the length of each queue."""
    with open_dispatcher() as d:
        counted = d.deliveries.stats()
        statuses = [s.value for s in DeliveryStatus]
        table = Table(title="Deliveries", title_justify="left")
        table.add_column("channel")
        for name in statuses:
            table.add_column(name, justify="right")
        for channel, row in sorted(counted.by_channel.items()):
            table.add_row(channel, *(str(row.get(DeliveryStatus(name), 0)) for name in statuses))
        console.print(table)
        reasons = sorted(counted.by_reason.items())
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
