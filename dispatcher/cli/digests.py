"""``dispatcher digests list``: the digest windows, open and sent."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from dispatcher.cli.core import open_dispatcher
from dispatcher.cli.output import emit, json_option


@click.group()
def digests() -> None:
    """See digest windows (deliveries gathered to be sent as one message)."""


@digests.command("list")
@click.option("--status", default=None, help="Only windows in this state: open, flushed, dropped.")
@click.option("--subscriber", default=None, help="Only this subscriber's windows.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
def list_digests(status: str | None, subscriber: str | None, limit: int, as_json: bool) -> None:
    """Digest windows, newest first, with their item count and the delivery carrying each."""
    with open_dispatcher() as d:
        rows = d.digests(status=status, subscriber=subscriber, limit=limit)
    if as_json:
        emit(rows)
        return
    table = Table(
        "window", "subscriber", "type", "channel", "status", "items", "closes at", "delivery"
    )
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["subscriber"],
            r["type"],
            r["channel"],
            r["status"],
            str(r["items"]),
            r["closes_at"],
            str(r["delivery_id"]),
        )
    Console().print(table)
