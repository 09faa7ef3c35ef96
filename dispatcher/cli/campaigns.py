"""``dispatcher campaigns create|list|show|preview|start|pause|resume|cancel``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dispatcher.campaigns import CampaignInfo, RunInfo
from dispatcher.cli.core import open_dispatcher
from dispatcher.cli.segments import segments
from dispatcher.dispatcher import Dispatcher
from dispatcher.errors import DispatcherError

console = Console()
#: Run states after which ``show --follow`` stops.
SETTLED = ("completed", "cancelled", "paused")


def _json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def _call(action: Callable[[Dispatcher], Any]) -> Any:
    with open_dispatcher() as d:
        try:
            return action(d)
        except DispatcherError as exc:
            raise click.ClickException(str(exc)) from None


def _parse_json(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{option} is not valid JSON: {exc}") from None


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.ClickException(f"{option}: {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise click.ClickException(f"{option}: give an offset (e.g. {value}+00:00)")
    return parsed


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.ClickException(f"{option} takes key=value, not {item!r}")
        out[key] = value
    return out


def _audience(
    everyone: bool,
    ids: tuple[str, ...],
    filters: tuple[str, ...],
    exclude: tuple[str, ...],
    segment: str | None = None,
) -> dict[str, Any]:
    options = (("--all", everyone), ("--to", ids), ("--where", filters), ("--segment", segment))
    given = [name for name, on in options if on]
    if len(given) != 1:
        raise click.ClickException("give exactly one of --all, --to, --where or --segment")
    audience: dict[str, Any]
    if segment:
        audience = {"segment": segment}
    elif everyone:
        audience = {"all": True}
    elif ids:
        audience = {"ids": list(ids)}
    else:
        # Values are JSON when they parse (numbers, true/false), strings otherwise.
        audience = {"filter": {k: _scalar(v) for k, v in _pairs(filters, "--where").items()}}
    if exclude:
        audience["exclude"] = list(exclude)
    return audience


def _scalar(value: str) -> Any:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return value
    return parsed if isinstance(parsed, bool | int | float) else value


def _print_campaign(info: CampaignInfo) -> None:
    click.echo(f"campaign {info.id} {info.name!r}: {info.status}")
    click.echo(f"  type {info.type}, priority {info.priority}, channels {', '.join(info.channels)}")
    click.echo(f"  audience {json.dumps(info.audience)}")
    for channel, locales in info.templates.items():
        click.echo(f"  own templates for {channel}: {', '.join(sorted(locales))}")
    if info.send_rates:
        rates = ", ".join(f"{c} {r}/min" for c, r in info.send_rates.items())
        click.echo(f"  send rates {rates}")
    if info.cron:
        click.echo(f"  cron {info.cron!r} in {info.timezone}")
    if info.next_run_at:
        click.echo(f"  next run at {info.next_run_at.isoformat()}")
    if info.end_at:
        click.echo(f"  ends at {info.end_at.isoformat()}")
    for run in info.runs[:1]:
        _print_run(run)


def _print_run(run: RunInfo) -> None:
    click.echo(
        f"  run {run.id} ({run.status}): targeted {run.targeted}, created {run.created}, "
        f"chunks {run.chunks}"
    )
    p = run.progress
    if p:
        click.echo(f"    sent {p['sent']}, in flight {p['in_flight']}")
        for label in ("skipped", "deferred", "failed"):
            if p[label]:
                reasons = ", ".join(f"{r} {n}" for r, n in sorted(p[label].items()))
                click.echo(f"    {label}: {reasons}")


@click.group()
def campaigns() -> None:
    """Bulk and scheduled sends: create, preview, start, pause, resume, cancel."""


@campaigns.command()
@click.argument("name")
@click.option("--type", "type_name", required=True, help="Notification type.")
@click.option("--data", default=None, help="Payload as JSON (default: the type's example).")
@click.option("--all", "everyone", is_flag=True, help="Everyone.")
@click.option("--to", "ids", multiple=True, help="A subscriber id (repeatable).")
@click.option("--where", "filters", multiple=True, help="attribute=value (repeatable, all hold).")
@click.option("--segment", default=None, help="A segment's name (see `campaigns segments`).")
@click.option("--exclude", multiple=True, help="A subscriber id to leave out (repeatable).")
@click.option(
    "--templates",
    "templates_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="The campaign's own templates: a JSON file of channel: {locale: {part: source}}.",
)
@click.option("--channel", "channels", multiple=True, help="Channel (default: the type's).")
@click.option("--priority", default=None, help="low, medium or high (urgent is refused).")
@click.option("--rate", "rates", multiple=True, help="channel=messages per minute.")
@click.option("--start-at", default=None, help="First run, ISO 8601 with offset.")
@click.option("--cron", default=None, help="Recurring: 'minute hour day month weekday'.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone of --cron.")
@click.option("--end-at", default=None, help="No run at or after this time.")
@_json_option
def create(
    name: str,
    type_name: str,
    data: str | None,
    everyone: bool,
    ids: tuple[str, ...],
    filters: tuple[str, ...],
    segment: str | None,
    exclude: tuple[str, ...],
    templates_file: str | None,
    channels: tuple[str, ...],
    priority: str | None,
    rates: tuple[str, ...],
    start_at: str | None,
    cron: str | None,
    timezone: str,
    end_at: str | None,
    as_json: bool,
) -> None:
    """Save a campaign (a draft unless it has --start-at or --cron)."""
    audience = _audience(everyone, ids, filters, exclude, segment)
    payload = _parse_json(data, "--data")
    templates = None
    if templates_file is not None:
        with open(templates_file, encoding="utf-8") as f:
            templates = _parse_json(f.read(), "--templates")
    send_rates: dict[str, Any] = {}
    for channel, rate in _pairs(rates, "--rate").items():
        if not rate.isdigit():
            raise click.ClickException(f"--rate {channel}: {rate!r} is not a whole number")
        send_rates[channel] = int(rate)

    def action(d: Dispatcher) -> CampaignInfo:
        return d.campaigns.create(
            name,
            type=type_name,
            data=payload if payload is not None else dict(d.catalog.get(type_name).example),
            audience=audience,
            channels=list(channels) or None,
            priority=priority,
            send_rates=send_rates,
            start_at=_parse_time(start_at, "--start-at"),
            cron=cron,
            timezone=timezone,
            end_at=_parse_time(end_at, "--end-at"),
            templates=templates,
        )

    info = _call(action)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        _print_campaign(info)


@campaigns.command("list")
@click.option("--status", default=None, help="Only campaigns in this state.")
@click.option("--limit", default=100, show_default=True)
@_json_option
def list_campaigns(status: str | None, limit: int, as_json: bool) -> None:
    """Campaigns, newest first, with their newest run."""
    infos = _call(lambda d: d.campaigns.list(status=status, limit=limit))
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    table = Table()
    for col in ("id", "name", "type", "status", "targeted", "created", "sent", "next run"):
        table.add_column(col)
    for i in infos:
        run = i.runs[0] if i.runs else None
        table.add_row(
            str(i.id),
            i.name,
            i.type,
            i.status,
            str(run.targeted) if run else "",
            str(run.created) if run else "",
            str(run.progress.get("sent", "")) if run else "",
            i.next_run_at.isoformat() if i.next_run_at else "",
        )
    console.print(table)


@campaigns.command()
@click.argument("campaign_id", type=int)
@click.option("--follow", is_flag=True, help="Show a live progress bar until the run settles.")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between looks.")
@_json_option
def show(campaign_id: int, follow: bool, interval: float, as_json: bool) -> None:
    """A campaign, its newest run and its progress."""
    with open_dispatcher() as d:
        try:
            info = d.campaigns.get(campaign_id)
            if follow and info.runs:
                info = _follow(d, campaign_id, info, interval)
        except DispatcherError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        _print_campaign(info)


def _follow(d: Dispatcher, campaign_id: int, info: CampaignInfo, interval: float) -> CampaignInfo:
    run = info.runs[0]
    with Progress(
        TextColumn(f"run {run.id}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("created", total=run.targeted or 1, state=run.status)
        while True:
            run = info.runs[0]
            sent = run.progress.get("sent", 0)
            bar.update(
                task,
                completed=run.created,
                state=f"{run.status}, sent {sent}",
            )
            if run.status in SETTLED:
                return info
            time.sleep(interval)
            info = d.campaigns.get(campaign_id)


@campaigns.command()
@click.argument("campaign_id", type=int)
@_json_option
def preview(campaign_id: int, as_json: bool) -> None:
    """Dry run: who would get it now per channel, who would not and why, a sample per
    locale. Writes nothing."""
    result = _call(lambda d: d.campaigns.preview(campaign_id))
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"campaign {campaign_id}: {result.targeted} subscriber(s) match now")
    table = Table()
    for col in (
        "channel",
        "would send",
        "opted out",
        "quiet hours now",
        "no address",
        "rate limited",
        "not configured",
    ):
        table.add_column(col)
    for name, c in result.channels.items():
        table.add_row(
            name,
            str(c.would_send),
            str(c.opted_out),
            str(c.in_quiet_hours),
            str(c.no_address),
            str(c.rate_limited),
            str(c.not_configured),
        )
    console.print(table)
    for locale, channels in result.samples.items():
        for channel, parts in channels.items():
            click.echo(f"--- sample {locale} / {channel}")
            for part, text in parts.items():
                shown = text if len(text) <= 400 else text[:400] + "…"
                click.echo(f"{part}: {shown}")


def _steer(verb: str, help_text: str) -> click.Command:
    @click.command(name=verb, help=help_text)
    @click.argument("campaign_id", type=int)
    @_json_option
    def command(campaign_id: int, as_json: bool) -> None:
        result = _call(lambda d: getattr(d.campaigns, verb)(campaign_id))
        if as_json:
            click.echo(json.dumps(result.to_dict(), indent=2))
        elif isinstance(result, RunInfo):
            click.echo(f"campaign {campaign_id}: run {result.id} started")
            _print_run(result)
        else:
            _print_campaign(result)

    return command


campaigns.add_command(_steer("start", "Start a run now."))
campaigns.add_command(_steer("pause", "Hold the running run after its current chunk."))
campaigns.add_command(_steer("resume", "Go on with a paused run from its cursor."))
campaigns.add_command(_steer("cancel", "Stop for good; what was not sent is skipped."))
campaigns.add_command(segments)
