"""Day-to-day operator commands: send, deliveries (list, retry), stats."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dispatcher import names
from dispatcher.brokers import BROKER_ERRORS, queue_depths
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
@click.option(
    "--since",
    default=None,
    metavar="WINDOW",
    help="Engagement of deliveries created in this window: 1h, 1d, 7d... (default: all kept).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def stats(since: str | None, as_json: bool) -> None:
    """Deliveries by channel and status, the length of each queue, and engagement per
    type, channel and day (sent, skipped and failed by reason, deferred, latency, seen,
    read and clicks)."""
    with open_dispatcher() as d:
        report = d.analytics.report(since=since)
        counted = d.deliveries.stats()
        lengths: dict[str, int] | None
        try:
            lengths = queue_depths(d.settings.broker_url, names.ALL)
        except BROKER_ERRORS as exc:
            lengths = None
            broker_error = type(exc).__name__
        if as_json:
            doc = {
                "deliveries": {
                    channel: {status.value: n for status, n in sorted(row.items())}
                    for channel, row in sorted(counted.by_channel.items())
                },
                "reasons": dict(sorted(counted.by_reason.items())),
                "queues": lengths,
                "engagement": report.to_dict(),
            }
            click.echo(json.dumps(doc, indent=2))
            return
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
        if lengths is not None:
            console.print("Queues: " + ", ".join(f"{k}={v}" for k, v in lengths.items()))
        else:
            console.print(f"[yellow]Broker not answering: {broker_error}[/]")
        console.print(engagement_table(report.to_dict()))


def engagement_table(doc: dict[str, Any]) -> Table:
    """The engagement report as a table, one line per type, channel and day."""
    title = "Engagement" + (f" since {doc['since'][:16]}" if doc["since"] else "")
    table = Table(title=title, title_justify="left")
    for col in ("day", "type", "channel", "dispatched", "sent", "skipped", "deferred"):
        table.add_column(col, justify="left" if col in ("day", "type", "channel") else "right")
    for col in ("failed", "p50 s", "p95 s", "seen", "read", "clicks"):
        table.add_column(col, justify="right")

    def reasons(counts: dict[str, int]) -> str:
        return " ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "0"

    def number(value: float | None) -> str:
        return "" if value is None else f"{value:g}"

    def rate(count: int, value: float | None) -> str:
        return str(count) + ("" if value is None else f" ({value:.0%})")

    for row in doc["rows"]:
        table.add_row(
            row["day"],
            row["type"],
            row["channel"],
            str(row["dispatched"]),
            str(row["sent"]),
            reasons(row["skipped"]),
            str(row["deferred"]),
            reasons(row["failed"]),
            number(row["latency_p50"]),
            number(row["latency_p95"]),
            rate(row["seen"], row["seen_rate"]),
            rate(row["read"], row["read_rate"]),
            rate(row["clicks"], row["click_rate"]),
        )
    return table
