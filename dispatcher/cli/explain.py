"""``dispatcher explain REF``: the trail of an event or notification, for support."""

from __future__ import annotations

import json

import click

from dispatcher.cli.core import open_dispatcher
from dispatcher.errors import DispatcherError


@click.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def explain(ref: str, as_json: bool) -> None:
    """Show what happened to an event or notification, per recipient and channel.

    REF is an event id (123 or e123), a notification id (n456) or
    key:<idempotency key>.
    """
    with open_dispatcher() as d:
        try:
            explanation = d.explain(ref)
        except DispatcherError as exc:
            raise click.ClickException(str(exc)) from None
        if as_json:
            click.echo(json.dumps(explanation.to_dict(), indent=2))
        else:
            for line in explanation.lines():
                click.echo(line)
