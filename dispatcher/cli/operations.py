"""Day-to-day operator commands: send, deliveries (list, retry), stats."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click
import redis
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dispatcher import names
from dispatcher.cli.core import open_dispatcher
from dispatcher.cli.group import FOUND, fail
from dispatcher.cli.output import emit, json_option
from dispatcher.dispatcher import Dispatcher
from dispatcher.enums import DeliveryStatus, Reason

console = Console()


@click.command()
@click.argument("type_name", metavar="TYPE")
@click.option("--to", "to", multiple=True, required=True, help="Subscriber id (repeatable).")
@click.option("--data", default=None, help="Payload as JSON (default: the type's example).")
@click.option("--priority", default=None, help="low, medium, high or urgent.")
@click.option("--key", "idempotency_key", default=None, help="Idempotency key.")
@json_option
def send(
    type_name: str,
    to: tuple[str, ...],
    data: str | None,
    priority: str | None,
    idempotency_key: str | None,
    as_json: bool,
) -> None:
    """Dispatch one event, as an app would."""
    with open_dispatcher() as d:
        try:
            payload: dict[str, Any] = (
                json.loads(data) if data is not None else dict(d.catalog.get(type_name).example)
            )
        except json.JSONDecodeError as exc:
            raise fail(f"--data is not valid JSON: {exc}") from None
        receipt = d.notify(
            type_name,
            to=list(to),
            data=payload,
            priority=priority,
            idempotency_key=idempotency_key,
        )
        if as_json:
            emit(
                {
                    "event_id": receipt.id,
                    "type": receipt.type,
                    "recipients": receipt.recipients,
                    "priority": receipt.priority,
                    "send_at": receipt.send_at,
                    "created": receipt.created,
                }
            )
            return
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
@json_option
def list_deliveries(
    status: str | None, channel: str | None, subscriber: str | None, limit: int, as_json: bool
) -> None:
    """The newest deliveries, with status, reason and attempts."""
    with open_dispatcher() as d:
        rows = d.deliveries.list(
            status=status, channel=channel, subscriber_id=subscriber, limit=limit
        )
        if as_json:
            emit([dataclasses.asdict(row) for row in rows])
            return
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
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="Every failed delivery, in batches.")
@json_option
def retry(ids: tuple[int, ...], all_failed: bool, as_json: bool) -> None:
    """Send failed deliveries again (attempts start over; ``explain`` shows the retry).

    Exits 1 when some of IDS were not failed (or do not exist).
    """
    if bool(ids) == all_failed:
        raise click.UsageError("give delivery IDS or --all-failed (not both)")
    with open_dispatcher() as d:
        if all_failed:
            requeued, skipped = _retry_all_failed(d, quiet=as_json), []
        else:
            result = d.deliveries.retry(ids)
            requeued, skipped = result.requeued, result.skipped
    n = len(requeued)
    if as_json:
        emit({"requeued": n, "ids": requeued, "skipped": skipped})
    else:
        click.echo(
            f"requeued {n} deliver{'y' if n == 1 else 'ies'}"
            + (f"; not failed or unknown: {', '.join(map(str, skipped))}" if skipped else "")
        )
    if skipped:
        sys.exit(FOUND)


#: Failed deliveries sent again per transaction by ``retry --all-failed``.
RETRY_BATCH = 1000


def _retry_all_failed(d: Dispatcher, *, quiet: bool) -> list[int]:
    """Retry every delivery that is failed now, a batch at a time, with a progress bar.
    Deliveries that fail again while this runs are not retried twice."""
    total = sum(
        row.get(DeliveryStatus.FAILED, 0) for row in d.deliveries.stats().by_channel.values()
    )
    done: list[int] = []
    seen: set[int] = set()
    with Progress(
        TextColumn("retrying failed deliveries"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=quiet,
    ) as progress:
        bar = progress.add_task("retry", total=total)
        while len(seen) < total:
            rows = d.deliveries.list(status=DeliveryStatus.FAILED, limit=RETRY_BATCH)
            batch = [row.id for row in rows if row.id not in seen][: total - len(seen)]
            if not batch:
                break
            seen.update(batch)
            done.extend(d.deliveries.retry(batch).requeued)
            progress.update(bar, completed=len(seen))
    return sorted(done)


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
