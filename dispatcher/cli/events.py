"""``dispatcher events cancel|reschedule``: withdraw or move an event before it fans out."""

from __future__ import annotations

import json
from datetime import datetime

import click

from dispatcher.cli.core import open_dispatcher
from dispatcher.errors import DispatcherError


@click.group()
def events() -> None:
    """Cancel or reschedule events that have not fanned out yet."""


def _ref(event_id: int | None, key: str | None) -> dict[str, object]:
    if (event_id is None) == (key is None):
        raise click.UsageError("give an EVENT_ID or --key (exactly one)")
    return {"event_id": event_id, "idempotency_key": key}


def _show(change: object, as_json: bool, verb: str) -> None:
    data = change.to_dict()  # type: ignore[attr-defined]
    if as_json:
        click.echo(json.dumps(data))
        return
    state = verb if data["changed"] else f"already {data['status']}"
    click.echo(f"event {data['id']} {state}; send at {data['send_at']}")


@events.command("cancel")
@click.argument("event_id", type=int, required=False)
@click.option("--key", default=None, help="The event's idempotency key instead of its id.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def cancel(event_id: int | None, key: str | None, as_json: bool) -> None:
    """Cancel an event before it fans out."""
    ref = _ref(event_id, key)
    with open_dispatcher() as d:
        try:
            change = d.cancel(**ref)  # type: ignore[arg-type]
        except DispatcherError as exc:
            raise click.ClickException(str(exc)) from None
    _show(change, as_json, "cancelled")


@events.command("reschedule")
@click.argument("event_id", type=int, required=False)
@click.option("--key", default=None, help="The event's idempotency key instead of its id.")
@click.option(
    "--send-at",
    "send_at",
    required=True,
    help="New instant, ISO 8601 with an offset (2027-04-25T20:00:00+02:00).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def reschedule(event_id: int | None, key: str | None, send_at: str, as_json: bool) -> None:
    """Move an event that has not fanned out yet to another instant."""
    ref = _ref(event_id, key)
    try:
        when = datetime.fromisoformat(send_at)
    except ValueError:
        raise click.BadParameter(
            "use ISO 8601 with an offset, e.g. 2027-04-25T20:00:00+02:00", param_hint="--send-at"
        ) from None
    with open_dispatcher() as d:
        try:
            change = d.reschedule(send_at=when, **ref)  # type: ignore[arg-type]
        except DispatcherError as exc:
            raise click.ClickException(str(exc)) from None
    _show(change, as_json, "rescheduled")
