"""``dispatcher campaigns segments create|list|show|update|delete``: named audiences."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from dispatcher.campaigns import SegmentInfo
from dispatcher.cli.core import open_dispatcher
from dispatcher.errors import DispatcherError

console = Console()


def _json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def _call(action: Any) -> Any:
    with open_dispatcher() as d:
        try:
            return action(d)
        except DispatcherError as exc:
            raise click.ClickException(str(exc)) from None


def _filter(values: tuple[str, ...]) -> dict[str, Any]:
    """``attribute=value`` pairs; values are JSON when they parse as a number or
    true/false, strings otherwise."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.ClickException(f"--where takes attribute=value, not {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out[key] = parsed if isinstance(parsed, bool | int | float) else value
    return out


def _print(info: SegmentInfo) -> None:
    click.echo(f"segment {info.name}: {json.dumps(info.filter)}")
    if info.description:
        click.echo(f"  {info.description}")
    click.echo(f"  updated {info.updated_at.isoformat()}")


def _echo(info: SegmentInfo, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        _print(info)


@click.group()
def segments() -> None:
    """Named, reusable audiences: a filter on subscriber attributes (--segment NAME)."""


@segments.command()
@click.argument("name")
@click.option("--where", "filters", multiple=True, required=True, help="attribute=value.")
@click.option("--description", default=None, help="What the segment is for.")
@_json_option
def create(name: str, filters: tuple[str, ...], description: str | None, as_json: bool) -> None:
    """Save a segment (every --where must hold)."""
    where = _filter(filters)
    info = _call(lambda d: d.campaigns.segments.create(name, where, description=description))
    _echo(info, as_json)


@segments.command("list")
@_json_option
def list_segments(as_json: bool) -> None:
    """Every segment, by name."""
    infos = _call(lambda d: d.campaigns.segments.list())
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    table = Table()
    for col in ("name", "filter", "description", "updated"):
        table.add_column(col)
    for i in infos:
        table.add_row(i.name, json.dumps(i.filter), i.description or "", i.updated_at.isoformat())
    console.print(table)


@segments.command()
@click.argument("name")
@_json_option
def show(name: str, as_json: bool) -> None:
    """One segment."""
    _echo(_call(lambda d: d.campaigns.segments.get(name)), as_json)


@segments.command()
@click.argument("name")
@click.option("--where", "filters", multiple=True, help="attribute=value (replaces the filter).")
@click.option("--description", default=None, help="A new description.")
@_json_option
def update(name: str, filters: tuple[str, ...], description: str | None, as_json: bool) -> None:
    """Change a segment; campaigns naming it use the new filter from their next run."""
    if not filters and description is None:
        raise click.ClickException("give --where and/or --description")
    where = _filter(filters) if filters else None

    def action(d: Any) -> SegmentInfo:
        info: SegmentInfo = d.campaigns.segments.update(name, filter=where, description=description)
        return info

    _echo(_call(action), as_json)


@segments.command()
@click.argument("name")
@_json_option
def delete(name: str, as_json: bool) -> None:
    """Delete a segment (refused while a campaign that is not cancelled names it)."""
    _call(lambda d: d.campaigns.segments.delete(name))
    if as_json:
        click.echo(json.dumps({"deleted": name}))
    else:
        click.echo(f"segment {name} deleted")
