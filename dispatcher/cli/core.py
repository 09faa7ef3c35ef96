"""Core commands: ``dispatcher migrate``."""

from __future__ import annotations

import click

from dispatcher.cli.output import emit, json_option
from dispatcher.dispatcher import Dispatcher


def open_dispatcher() -> Dispatcher:
    """A dispatcher from the environment (the group turns a bad setting into one line)."""
    return Dispatcher.from_env()


@click.command()
@json_option
def migrate(as_json: bool) -> None:
    """Create or upgrade the database schema (DISPATCHER_DATABASE_URL)."""
    with open_dispatcher() as d:
        d.migrate()
        shown = d.store.url.render_as_string(hide_password=True)
        if as_json:
            emit({"database": shown, "revision": d.schema_revisions()[0]})
        else:
            click.echo(f"database at {shown} is up to date")
