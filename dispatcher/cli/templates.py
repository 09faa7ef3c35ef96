"""``dispatcher templates``: preview, validate and manage operators' template versions."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from dispatcher.cli.core import open_dispatcher
from dispatcher.cli.output import emit, json_option
from dispatcher.errors import DispatcherError, TemplateError


@click.group()
def templates() -> None:
    """Preview and check templates; save, restore and deactivate database versions."""


@templates.command()
@click.argument("type_name", metavar="TYPE")
@click.option("--channel", default="in_app", show_default=True, help="in_app, web_push, email")
@click.option("--locale", default=None, help="e.g. es or es-MX (default: the default locale)")
@click.option("--data", "data_json", default=None, help="JSON payload instead of the example")
@json_option
def preview(
    type_name: str, channel: str, locale: str | None, data_json: str | None, as_json: bool
) -> None:
    """Render every part of TYPE on one channel with the type's example data."""
    data: dict[str, Any] | None = None
    if data_json is not None:
        try:
            data = json.loads(data_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--data") from None
    with open_dispatcher() as d:
        try:
            parts = d.templates.preview(type_name, channel, locale, data)
        except DispatcherError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        emit(dict(parts))
        return
    for part, text in parts.items():
        click.secho(f"── {part} ──", bold=True)
        click.echo(text)


@templates.command()
@json_option
def validate(as_json: bool) -> None:
    """Check every template file and database version: syntax and a render with the example.

    Prints ``file:line: reason`` per problem and exits with status 1 if there is any.
    """
    with open_dispatcher() as d:
        problems = d.templates.validate()
        files = sum(len(list(p.rglob("*.j2"))) for p in d.renderer.templates_dirs)
        overrides = len(d.renderer.sync().by_name)
    if as_json:
        emit(
            {
                "files": files,
                "database_versions": overrides,
                "problems": [str(problem) for problem in problems],
            }
        )
        sys.exit(1 if problems else 0)
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s)", err=True)
        sys.exit(1)
    click.echo(f"{files} template file(s) and {overrides} database version(s) OK")


@templates.command(name="list")
@click.option("--type", "type_name", default=None)
@click.option("--channel", default=None)
@click.option("--locale", default=None)
@json_option
def list_(type_name: str | None, channel: str | None, locale: str | None, as_json: bool) -> None:
    """The database versions in force."""
    with open_dispatcher() as d:
        rows = d.templates.list(type=type_name, channel=channel, locale=locale)
    if as_json:
        emit([_version(v) for v in rows])
        return
    for v in rows:
        click.echo(
            f"{v.type}/{v.locale}/{v.channel}/{v.part}  v{v.version}  "
            f"{v.created_at:%Y-%m-%d %H:%M} UTC  {v.created_by or '-'}"
        )


def _version(v: Any) -> dict[str, Any]:
    fields = ("type", "channel", "locale", "part", "version", "active", "created_at", "created_by")
    return {name: getattr(v, name, None) for name in fields}


def _key(func: Any) -> Any:
    for name in ("part", "locale", "channel", "type_name"):
        func = click.argument(name, metavar=name.upper().replace("_NAME", ""))(func)
    return func


@templates.command()
@_key
@json_option
def history(type_name: str, channel: str, locale: str, part: str, as_json: bool) -> None:
    """Every version of one part, newest first (* marks active ones)."""
    with open_dispatcher() as d:
        rows = d.templates.history(type_name, channel, locale, part)
    if as_json:
        emit([_version(v) for v in rows])
        return
    if not rows:
        click.echo("no database versions: the file is used")
    for v in rows:
        mark = "*" if v.active else " "
        click.echo(f"{mark} v{v.version}  {v.created_at:%Y-%m-%d %H:%M} UTC  {v.created_by or '-'}")


@templates.command()
@_key
@click.argument("source_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by", "created_by", default=None, help="Who is saving (shown in history)")
@json_option
def save(
    type_name: str,
    channel: str,
    locale: str,
    part: str,
    source_file: Path,
    created_by: str | None,
    as_json: bool,
) -> None:
    """Save SOURCE_FILE as the new active version of one part (validated first)."""
    with open_dispatcher() as d:
        try:
            v = d.templates.save(
                type_name,
                channel,
                locale,
                part,
                source_file.read_text(encoding="utf-8"),
                created_by=created_by,
            )
        except TemplateError as exc:
            raise click.ClickException(f"{source_file}:{exc.line or '?'}: {exc.reason}") from None
        except DispatcherError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        emit(_version(v))
        return
    click.echo(f"saved {type_name}/{locale}/{channel}/{part} v{v.version}")


@templates.command()
@_key
@click.option("--version", type=int, default=None, help="Default: the one before the current")
@click.option("--by", "created_by", default=None)
@json_option
def restore(
    type_name: str,
    channel: str,
    locale: str,
    part: str,
    version: int | None,
    created_by: str | None,
    as_json: bool,
) -> None:
    """Make an earlier version the active one again (as a new version)."""
    with open_dispatcher() as d:
        try:
            v = d.templates.restore(
                type_name, channel, locale, part, version, created_by=created_by
            )
        except DispatcherError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        emit(_version(v))
        return
    click.echo(f"restored {type_name}/{locale}/{channel}/{part} as v{v.version}")


@templates.command()
@_key
@click.option("--version", type=int, default=None, help="Default: every active version")
@json_option
def deactivate(
    type_name: str, channel: str, locale: str, part: str, version: int | None, as_json: bool
) -> None:
    """Stop using database versions of one part; the file takes over again."""
    with open_dispatcher() as d:
        count = d.templates.deactivate(type_name, channel, locale, part, version=version)
    if as_json:
        emit({"deactivated": count})
        return
    click.echo(f"deactivated {count} version(s)")
