"""``dispatcher subscribers``: add, import from CSV, list and show subscribers."""

from __future__ import annotations

import csv
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from dispatcher.cli.core import open_dispatcher
from dispatcher.cli.group import FOUND, fail
from dispatcher.cli.output import emit, json_option
from dispatcher.errors import ValidationError

#: CSV columns stored as subscriber fields; every other column becomes an attribute.
FIELDS = ("email", "locale", "timezone")
#: Rows written per transaction by ``import``.
BATCH = 500


def _info(info: Any) -> dict[str, Any]:
    return dataclasses.asdict(info)


@click.group()
def subscribers() -> None:
    """Create, import, list and show subscribers."""


@subscribers.command()
@click.argument("subscriber_id", metavar="ID")
@click.option("--email", default=None)
@click.option("--locale", default=None, help="e.g. es or es-MX")
@click.option("--timezone", default=None, help="e.g. Europe/Madrid")
@click.option("--attr", "attrs", multiple=True, help="KEY=VALUE attribute (repeatable).")
@json_option
def add(
    subscriber_id: str,
    email: str | None,
    locale: str | None,
    timezone: str | None,
    attrs: tuple[str, ...],
    as_json: bool,
) -> None:
    """Create subscriber ID, or update the fields given."""
    attributes: dict[str, Any] = {}
    for pair in attrs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--attr")
        attributes[key] = value
    fields = {"email": email, "locale": locale, "timezone": timezone}
    given: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    with open_dispatcher() as d:
        info = d.subscribers.upsert(subscriber_id, **given, **attributes)
    if as_json:
        emit(_info(info))
    else:
        click.echo(f"subscriber {info.id} saved")


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row of the CSV file."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "id" not in reader.fieldnames:
            raise fail(f"{path}: the first line must name the columns, one of them 'id'")
        for row in reader:
            yield reader.line_num, row


@subscribers.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--batch-size", default=BATCH, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def import_(csv_file: Path, batch_size: int, as_json: bool) -> None:
    """Create or update subscribers from CSV_FILE.

    Columns: id (required), email, locale, timezone; any other column is stored as an
    attribute. Empty cells are left unchanged. Bad rows are reported by line number
    with the reason and nothing is written for them; good rows are written in batches.
    Exits 1 when some rows were bad.
    """
    try:
        total = sum(1 for _ in _rows(csv_file))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise fail(f"{csv_file}: not a UTF-8 CSV file ({exc})") from None
    bad: list[dict[str, Any]] = []
    written = 0
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    with (
        open_dispatcher() as d,
        Progress(
            TextColumn("importing subscribers"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=as_json,
        ) as progress,
    ):
        bar = progress.add_task("import", total=total)
        batch = []
        for line, row in _rows(csv_file):
            if None in row:  # more cells than columns
                bad.append({"line": line, "reason": "more cells than the header has columns"})
                continue
            cells = {k: (v or "").strip() for k, v in row.items()}
            given = {k: cells[k] for k in FIELDS if cells.get(k)}
            attributes = {
                k: v for k, v in cells.items() if k not in FIELDS and k != "id" and v != ""
            }
            try:
                batch.append(d.subscribers.prepare(cells.get("id", ""), **given, **attributes))
            except ValidationError as exc:
                bad.append({"line": line, "reason": str(exc)})
            if len(batch) >= batch_size:
                written += d.subscribers.upsert_many(batch)
                progress.update(bar, completed=written + len(bad))
                batch = []
        written += d.subscribers.upsert_many(batch)
        progress.update(bar, completed=written + len(bad))
    if as_json:
        emit({"written": written, "bad": bad})
    else:
        for problem in bad:
            err.print(f"{csv_file}:{problem['line']}: {problem['reason']}")
        click.echo(f"{written} subscriber(s) written, {len(bad)} bad row(s) skipped")
    if bad:
        sys.exit(FOUND)


@subscribers.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--after", default=None, help="Start after this id (paging).")
@json_option
def list_(limit: int, after: str | None, as_json: bool) -> None:
    """Subscribers in id order."""
    with open_dispatcher() as d:
        rows = d.subscribers.list(limit=limit, after=after)
    if as_json:
        emit([_info(r) for r in rows])
        return
    table = Table()
    for column in ("id", "email", "locale", "timezone", "attributes"):
        table.add_column(column)
    for r in rows:
        attributes = ", ".join(f"{k}={v}" for k, v in r.attributes.items())
        table.add_row(r.id, r.email or "", r.locale or "", r.timezone, attributes)
    Console().print(table)


@subscribers.command()
@click.argument("subscriber_id", metavar="ID")
@json_option
def show(subscriber_id: str, as_json: bool) -> None:
    """One subscriber's fields and attributes."""
    with open_dispatcher() as d:
        info = d.subscribers.get(subscriber_id)
    if as_json:
        emit(_info(info))
        return
    for key, value in _info(info).items():
        click.echo(f"{key}: {value}")
