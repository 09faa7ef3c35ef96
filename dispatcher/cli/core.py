"""Core commands: ``dispatcher migrate``."""

from __future__ import annotations

import click

from dispatcher.dispatcher import Dispatcher
from dispatcher.errors import DispatcherError


def open_dispatcher() -> Dispatcher:
    """A dispatcher from the environment, or a clean CLI error naming the problem."""
    try:
        return Dispatcher.from_env()
    except DispatcherError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
def migrate() -> None:
    """Create or upgrade the database schema (DISPATCHER_DATABASE_URL)."""
    with open_dispatcher() as d:
        d.migrate()
        click.echo(f"database at {d.store.url.render_as_string(hide_password=True)} is up to date")
