"""``dispatcher demo``: migrate, start a worker and beat, dispatch seed events, show results."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import click
import redis
from rich.console import Console
from rich.table import Table

from dispatcher.dispatcher import Dispatcher
from dispatcher.errors import DispatcherError
from dispatcher.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
DEMO_DIR = Path("demo-data")

SUBSCRIBERS: list[tuple[str, dict[str, Any]]] = [
    (
        "luis",
        {
            "email": "luis@example.com",
            "locale": "es",
            "timezone": "Europe/Madrid",
            "role": "seller",
        },
    ),
    (
        "ana",
        {
            "email": "ana@example.com",
            "locale": "en",
            "timezone": "America/New_York",
            "role": "admin",
        },
    ),
    (
        "marta",
        {
            "email": "marta@example.com",
            "locale": "es-MX",
            "timezone": "America/Mexico_City",
            "role": "seller",
        },
    ),
]

console = Console()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


@contextmanager
def _redis(url: str) -> Iterator[str]:
    """Yield a Redis URL that answers: the configured one, or a private redis-server."""
    if _answers(url):
        yield url
        return
    console.print(f"[yellow]Nothing answers at {url}.[/]")
    binary = shutil.which("redis-server")
    if binary is None:
        raise click.ClickException(
            "Redis is needed for the broker and real-time pub/sub. Install it with:\n"
            "    sudo apt-get install -y redis-server\n"
            "or point DISPATCHER_BROKER_URL and DISPATCHER_REDIS_URL at a running Redis."
        )
    port = _free_port()
    console.print(f"Starting a private redis-server on 127.0.0.1:{port} for this demo.")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    private = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not _answers(private):
            if time.monotonic() > deadline or process.poll() is not None:
                raise click.ClickException("the private redis-server did not start")
            time.sleep(0.1)
        yield private
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class _Mailbox:
    """What the demo's local SMTP sink received."""

    messages: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        parsed = BytesParser(policy=policy.default).parsebytes(envelope.content)
        self.messages.append((", ".join(envelope.rcpt_tos), str(parsed["Subject"])))
        return "250 OK"


@contextmanager
def _smtp_sink() -> Iterator[_Mailbox | None]:
    """A local SMTP server for the demo's email channel, unless one is configured."""
    if os.environ.get("DISPATCHER_SMTP_HOST"):
        yield None
        return
    try:
        from aiosmtpd.controller import Controller
    except ImportError:  # aiosmtpd comes with the dev extras
        yield None
        return
    mailbox = _Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    os.environ.update(
        {
            "DISPATCHER_SMTP_HOST": "127.0.0.1",
            "DISPATCHER_SMTP_PORT": str(port),
            "DISPATCHER_SMTP_SECURITY": "none",
            "DISPATCHER_SMTP_FROM_ADDRESS": "Tickets <notifications@tickets.example.com>",
        }
    )
    console.print(f"Email goes to a local SMTP sink on 127.0.0.1:{port} for this demo.")
    try:
        yield mailbox
    finally:
        controller.stop()
        for key in ("HOST", "PORT", "SECURITY", "FROM_ADDRESS"):
            os.environ.pop(f"DISPATCHER_SMTP_{key}", None)


@contextmanager
def _celery(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[None]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", *args],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _dispatch(d: Dispatcher) -> int:
    example = {t.name: dict(t.example) for t in d.catalog}
    sends = [
        ("ticket_created", ["luis", "ana"], example["ticket_created"], "ticket-123:created"),
        ("ticket_updated", ["luis"], example["ticket_updated"], "ticket-123:updated:1"),
        ("ticket_cancelled", ["luis", "ana"], example["ticket_cancelled"], "ticket-123:cancel"),
        ("report_generated", ["ana"], example["report_generated"], "report-7"),
        ("system_alert", ["luis", "ana", "marta"], example["system_alert"], "alert-payments"),
        ("user_activity", ["marta"], example["user_activity"], "login-marta-1"),
        # The same key again: idempotent, no second event.
        ("ticket_created", ["luis", "ana"], example["ticket_created"], "ticket-123:created"),
    ]
    created = 0
    for type_name, to, data, key in sends:
        receipt = d.notify(type_name, to=to, data=data, idempotency_key=key)
        created += receipt.created
        state = "stored" if receipt.created else "duplicate key, same event"
        console.print(
            f"  notify {type_name:<17} to {', '.join(to):<16} -> event {receipt.id} ({state})"
        )
    return created


def _finished(d: Dispatcher, events: int) -> bool:
    """Every one of the demo's ``events`` fanned out and every delivery settled."""
    stored = d.deliveries.stats().by_channel
    return events > 0 and bool(stored) and d.deliveries.unsettled() == 0


def _show(d: Dispatcher) -> None:
    for external_id, _ in SUBSCRIBERS:
        table = Table(title=f"In-app inbox of {external_id}", title_justify="left")
        for col in ("id", "type", "priority", "title", "body", "created_at", "read"):
            table.add_column(col)
        for item in d.inbox(external_id):
            table.add_row(
                str(item.id),
                item.type,
                item.priority,
                item.title,
                item.body,
                item.created_at.strftime("%H:%M:%S"),
                "yes" if item.read_at else "no",
            )
        console.print(table)
    table = Table(title="Deliveries", title_justify="left")
    for col in ("id", "subscriber", "type", "channel", "status", "reason", "attempts"):
        table.add_column(col)
    for row in reversed(d.deliveries.list(limit=1000)):
        table.add_row(
            str(row.id),
            row.subscriber_id,
            row.type,
            row.channel,
            row.status.value,
            row.reason or "",
            str(row.attempts),
        )
    console.print(table)


@click.command()
@click.option("--timeout", default=90.0, show_default=True, help="Seconds to wait for delivery.")
def demo(timeout: float) -> None:
    """Run the whole pipeline on this machine and print inboxes and deliveries."""
    DEMO_DIR.mkdir(exist_ok=True)
    if "DISPATCHER_DATABASE_URL" not in os.environ:
        for suffix in ("", "-wal", "-shm"):
            with suppress(FileNotFoundError):
                (DEMO_DIR / f"demo.db{suffix}").unlink()
        os.environ["DISPATCHER_DATABASE_URL"] = f"sqlite:///{(DEMO_DIR / 'demo.db').resolve()}"
    try:
        settings = Settings.from_env()
    except DispatcherError as exc:
        raise click.ClickException(str(exc)) from None
    with _redis(settings.broker_url) as broker, _smtp_sink() as mailbox:
        if broker != settings.broker_url:
            os.environ["DISPATCHER_BROKER_URL"] = broker
            os.environ["DISPATCHER_REDIS_URL"] = broker
        d = Dispatcher.from_env()
        console.print(f"[bold]1. Migrating[/] {d.store.url.render_as_string(hide_password=True)}")
        d.migrate()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        console.print("[bold]2. Starting a Celery worker and beat[/] (logs in demo-data/)")
        with (
            _celery(
                ["worker", "--concurrency", "2", "--loglevel", "INFO", "-n", "demo@%h"],
                env,
                DEMO_DIR / "worker.log",
            ),
            _celery(
                ["beat", "--loglevel", "INFO", "-s", str(DEMO_DIR / "beat-schedule")],
                env,
                DEMO_DIR / "beat.log",
            ),
        ):
            console.print("[bold]3. Subscribers[/]")
            for external_id, fields in SUBSCRIBERS:
                d.subscribers.upsert(external_id, **fields)
                console.print(f"  {external_id}: {fields}")
            console.print("[bold]4. Dispatching events[/]")
            events = _dispatch(d)
            console.print("[bold]5. Waiting for the worker[/]")
            deadline = time.monotonic() + timeout
            while not _finished(d, events):
                if time.monotonic() > deadline:
                    _show(d)
                    raise click.ClickException(
                        f"deliveries not finished after {timeout:.0f}s; see demo-data/worker.log"
                    )
                time.sleep(0.2)
        _show(d)
        d.close()
        if mailbox is not None:
            table = Table(title="Emails received by the local SMTP sink", title_justify="left")
            table.add_column("to")
            table.add_column("subject")
            for to, subject in mailbox.messages:
                table.add_row(to, subject)
            console.print(table)
    console.print(
        "[bold green]Done.[/] Web push shows [italic]channel_not_configured[/] until "
        "DISPATCHER_PUSH_VAPID_PRIVATE_KEY is set (see: dispatcher vapid generate)."
    )
