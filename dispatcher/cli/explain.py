"""``dispatcher explain REF``: the trail of an event or notification, for support."""

from __future__ import annotations

import click

from dispatcher.cli.core import open_dispatcher
from dispatcher.cli.output import emit, json_option


@click.command()
@click.argument("ref")
@json_option
def explain(ref: str, as_json: bool) -> None:
    """Show what happened to an event or notification, per recipient and channel.

    REF is an event id (123 or e123), a notification id (n456) or
    key:<idempotency key>.
    """
    with open_dispatcher() as d:
        explanation = d.explain(ref)
        if as_json:
            emit(explanation.to_dict())
        else:
            for line in explanation.lines():
                click.echo(line)
