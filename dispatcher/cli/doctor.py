"""``dispatcher doctor``: is this deployment ready? One line per check, with the fix.

Checks, in order: settings (a default signing secret fails outside a local setup),
the database (reachable, migrations current), Redis and the broker, SMTP (connect,
TLS and login; no mail is sent), the VAPID keys, a live worker on every queue
(Celery's ``ping`` and ``active_queues`` with a short timeout) and a live beat.

Beat is judged by the sweep's heartbeat key (:func:`dispatcher.names.sweep_heartbeat`),
written by every ``dispatcher.sweep`` run, rather than by beat's schedule file: the
file lives on beat's machine under a path only its command line knows, and is synced
every few minutes, while the key is shared through Redis and proves the whole loop
(beat sends, a maintenance worker runs the sweep) every five seconds.

Exit status 1 when any check failed (warnings do not count), 3 when settings
cannot even be read; ``--json`` prints ``{"ok": ..., "checks": [...]}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import click
import redis

from dispatcher import names
from dispatcher.brokers import BROKER_ERRORS, is_amqp, ping_broker
from dispatcher.cli.group import FOUND, default_secret, failure_for, local
from dispatcher.cli.output import emit, json_option
from dispatcher.dispatcher import Dispatcher
from dispatcher.errors import ConfigurationError, DispatcherError
from dispatcher.settings import Settings, SmtpSettings

OK, WARN, FAIL = "ok", "warn", "fail"
#: A sweep heartbeat older than this means beat (or every maintenance worker) is gone;
#: beat sweeps every 5 seconds.
BEAT_MAX_AGE = 60.0


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _explain(exc: BaseException) -> str:
    failure = failure_for(exc)
    return failure.message if failure is not None else f"{type(exc).__name__}: {exc}"


def check_settings(settings: Settings) -> Check:
    if not default_secret(settings):
        return Check("settings", OK, "read from the environment; signing secret set")
    fix = "set DISPATCHER_SIGNING_SECRET to a random value (secrets.token_urlsafe(32))"
    if local(settings):
        return Check("settings", WARN, "default signing secret (fine on this machine only)", fix)
    return Check(
        "settings",
        FAIL,
        f"default signing secret with public URL {settings.public_url}: links can be forged",
        fix,
    )


def check_database(d: Dispatcher) -> list[Check]:
    shown = d.store.url.render_as_string(hide_password=True)
    try:
        current, head = d.schema_revisions()
    except Exception as exc:
        return [Check("database", FAIL, _explain(exc), "start the database or fix the URL")]
    reachable = Check("database", OK, f"{shown} answers")
    if current != head:
        state = "no schema" if current is None else f"revision {current}, newest {head}"
        return [reachable, Check("migrations", FAIL, state, "run `dispatcher migrate`")]
    return [reachable, Check("migrations", OK, f"at the newest revision ({head})")]


def check_redis(settings: Settings) -> list[Check]:
    checks = []
    try:
        ping_broker(settings.redis_url)
    except redis.RedisError as exc:
        fix = "start Redis or fix DISPATCHER_REDIS_URL"
        checks.append(Check("redis", FAIL, f"{type(exc).__name__}: {exc}", fix))
    else:
        checks.append(Check("redis", OK, "answers PING"))
    kind = "RabbitMQ" if is_amqp(settings.broker_url) else "Redis"
    try:
        ping_broker(settings.broker_url)
    except BROKER_ERRORS as exc:
        fix = f"start {kind} or fix DISPATCHER_BROKER_URL"
        checks.append(Check("broker", FAIL, f"{type(exc).__name__}: {exc}", fix))
    else:
        checks.append(Check("broker", OK, f"{kind} answers"))
    return checks


async def _smtp_login(smtp: SmtpSettings) -> str:
    import aiosmtplib

    assert smtp.host is not None
    client = aiosmtplib.SMTP(
        hostname=smtp.host,
        port=smtp.port,
        use_tls=smtp.security == "tls",
        start_tls=smtp.security == "starttls",
        validate_certs=smtp.validate_certs,
        cert_bundle=smtp.ca_file,
        timeout=min(smtp.timeout, 5.0),
    )
    await client.connect()
    try:
        if smtp.username:
            password = smtp.password.get_secret_value() if smtp.password else ""
            await client.login(smtp.username, password)
            return f"logged in to {smtp.host}:{smtp.port} as {smtp.username}"
        return f"connected to {smtp.host}:{smtp.port} ({smtp.security}; no login configured)"
    finally:
        await client.quit()


def check_smtp(settings: Settings) -> Check:
    smtp = settings.smtp
    if smtp.host is None:
        return Check(
            "smtp",
            WARN,
            "not configured: email deliveries are skipped (channel_not_configured)",
            "set DISPATCHER_SMTP_HOST (and _PORT, _USERNAME, _PASSWORD)",
        )
    try:
        return Check("smtp", OK, asyncio.run(_smtp_login(smtp)))
    except Exception as exc:
        where = f"{smtp.host}:{smtp.port}"
        return Check(
            "smtp",
            FAIL,
            f"{where}: {type(exc).__name__}: {exc}",
            "check DISPATCHER_SMTP_HOST/_PORT/_SECURITY/_USERNAME/_PASSWORD",
        )


def check_vapid(settings: Settings) -> Check:
    from dispatcher.channels.web_push.vapid import VapidKey

    if not settings.push.is_configured():
        return Check(
            "vapid",
            WARN,
            "no key: web push deliveries are skipped (channel_not_configured)",
            "run `dispatcher vapid generate` and set the variables it prints",
        )
    try:
        key = VapidKey.from_settings(settings.push)
    except ConfigurationError as exc:
        return Check("vapid", FAIL, str(exc), "run `dispatcher vapid generate`")
    return Check("vapid", OK, f"key loads; applicationServerKey {key.public_key_b64[:16]}…")


def check_workers(settings: Settings, timeout: float) -> list[Check]:
    from dispatcher.worker import create_app

    app = create_app(settings)
    try:
        replies = app.control.ping(timeout=timeout) or []
        queues = app.control.inspect(timeout=timeout).active_queues() or {}
    except Exception as exc:
        return [Check("workers", FAIL, f"{type(exc).__name__}: {exc}", "start Redis")]
    live = sorted(name for reply in replies for name in reply)
    if not live:
        fix = "start one: celery -A worker worker"
        return [Check("workers", FAIL, f"none answered ping within {timeout:g}s", fix)]
    checks = [Check("workers", OK, f"{len(live)} answered: {', '.join(live)}")]
    served: dict[str, list[str]] = {}
    for worker, entries in queues.items():
        for entry in entries or []:
            served.setdefault(str(entry.get("name")), []).append(worker)
    for queue in names.ALL:
        if served.get(queue):
            checks.append(Check(f"queue {queue}", OK, f"served by {len(served[queue])}"))
        else:
            fix = f"start a worker with -Q {queue} (or without -Q: all queues)"
            checks.append(Check(f"queue {queue}", FAIL, "no live worker consumes it", fix))
    return checks


def check_beat(settings: Settings, now: datetime | None = None) -> Check:
    fix = "run exactly one `celery -A worker beat`, and a worker on dispatcher.maintenance"
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
        raw = client.get(names.sweep_heartbeat(settings.redis_prefix))
        client.close()
    except redis.RedisError as exc:
        return Check("beat", FAIL, f"cannot read the sweep heartbeat: {exc}", fix)
    if raw is None:
        return Check("beat", FAIL, "no sweep has run in the last hour", fix)
    swept = datetime.fromisoformat(raw.decode() if isinstance(raw, bytes) else str(raw))
    age = ((now or datetime.now(UTC)) - swept).total_seconds()
    if age > BEAT_MAX_AGE:
        return Check("beat", FAIL, f"last sweep {age:.0f}s ago (expected every 5s)", fix)
    return Check("beat", OK, f"last sweep {age:.0f}s ago")


def run_checks(timeout: float) -> list[Check]:
    try:
        settings = Settings.from_env()
    except ConfigurationError as exc:
        return [Check("settings", FAIL, str(exc), "fix the variable named")]
    checks = [check_settings(settings)]
    try:
        d = Dispatcher(settings)
    except DispatcherError as exc:
        checks.append(Check("database", FAIL, str(exc), "fix DISPATCHER_DATABASE_URL"))
    else:
        with d:
            checks.extend(check_database(d))
    checks.extend(check_redis(settings))
    steps: list[Callable[[], Any]] = [
        lambda: check_smtp(settings),
        lambda: check_vapid(settings),
        lambda: check_workers(settings, timeout),
        lambda: check_beat(settings),
    ]
    for step in steps:
        result = step()
        checks.extend(result if isinstance(result, list) else [result])
    return checks


_MARK = {OK: "[green]ok  [/]", WARN: "[yellow]warn[/]", FAIL: "[red]FAIL[/]"}


@click.command()
@click.option(
    "--timeout", default=2.0, show_default=True, help="Seconds to wait for workers to answer."
)
@json_option
def doctor(timeout: float, as_json: bool) -> None:
    """Check settings, database, Redis, SMTP, VAPID, workers and beat; say how to fix.

    Exits 1 when a check failed (warnings do not count).
    """
    from rich.console import Console
    from rich.markup import escape

    checks = run_checks(timeout)
    failed = any(c.status == FAIL for c in checks)
    if as_json:
        emit({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        console = Console(highlight=False, soft_wrap=True)
        for c in checks:
            fix = f" → {escape(c.fix)}" if c.fix else ""
            console.print(f"{_MARK[c.status]} {c.name}: {escape(c.detail)}{fix}")
    if failed:
        raise SystemExit(FOUND)
