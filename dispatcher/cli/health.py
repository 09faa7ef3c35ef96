"""``dispatcher health ROLE``: the container health check of each role of the image.

- ``gateway``: ``GET /readyz`` answers 200 (database, Redis and pub/sub are up);
- ``worker``: the worker node answers a Celery ping over the broker;
- ``beat``: its schedule file was written recently (beat syncs it every few minutes
  while it ticks, so a stuck or dead beat leaves it stale);
- ``flower``: ``GET /healthcheck`` answers ``OK``;
- ``migrate``: the database answers (the role runs once and exits);
- ``auto``: the role and its options (port, node name, schedule file) read from the
  command line of the container's first process, so one ``HEALTHCHECK`` fits every role.

Exit status 0 means healthy and 1 unhealthy, as Docker's ``HEALTHCHECK`` expects;
``--json`` prints one JSON object instead of a line.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from dispatcher.cli.core import open_dispatcher
from dispatcher.cli.group import FOUND, fail
from dispatcher.errors import DispatcherError
from dispatcher.settings import Settings

ROLES = ("gateway", "worker", "beat", "flower", "migrate")
GATEWAY_URL = "http://127.0.0.1:8000/readyz"
FLOWER_URL = "http://127.0.0.1:5555/healthcheck"
#: Celery beat's default schedule file (in its working directory).
SCHEDULE_FILE = "celerybeat-schedule"
#: Beat rewrites its schedule file at least every 3 minutes while it ticks.
SCHEDULE_MAX_AGE = 300.0


@dataclass
class Health:
    """The outcome of one role's check."""

    role: str
    healthy: bool
    detail: str
    checks: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    """What a check needs to know of the process it checks."""

    url: str | None = None
    node: str | None = None
    schedule_file: Path | None = None
    max_age: float = SCHEDULE_MAX_AGE
    timeout: float = 5.0


def role_of(argv: list[str]) -> tuple[str, Options]:
    """The role of a process started with ``argv``, and the options it was given.

    Raises:
        click.ClickException: ``argv`` is none of the image's roles.
    """
    options = Options()
    words = list(argv)
    role = ""
    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word in ("-A", "--app"):  # the app is called "worker": not the role
            skip = True
            continue
        if word in ROLES and not role:
            role = word
            rest = words[i + 1 :]
            break
    else:
        rest = []
    if not role:
        raise fail(f"cannot tell the role of {' '.join(argv)!r}", FOUND)
    host, port = "127.0.0.1", {"gateway": "8000", "flower": "5555"}.get(role, "")
    for i, word in enumerate(rest):
        name, _, value = word.partition("=")
        if not value and i + 1 < len(rest):
            value = rest[i + 1]
        if name == "--port":
            port = value
        elif name in ("--host", "--address") and not _unspecified(value):
            host = value
        elif name in ("-s", "--schedule"):
            options.schedule_file = Path(value)
        elif name in ("-n", "--hostname"):
            options.node = value
    if role == "gateway":
        options.url = f"http://{host}:{port}/readyz"
    elif role == "flower":
        options.url = f"http://{host}:{port}/healthcheck"
    return role, options


def _unspecified(host: str) -> bool:
    """Whether ``host`` binds every interface (then the check asks the loopback)."""
    try:
        return not host or ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def process_argv(pid: int = 1) -> list[str]:
    """The command line of process ``pid`` (the container's first process)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError as exc:
        raise fail(f"cannot read process {pid}'s command: {exc.strerror}", FOUND) from None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    if urlsplit(url).scheme not in ("http", "https"):
        raise fail(f"{url!r} is not an http(s) URL", FOUND)
    request = urllib.request.Request(url, headers={"User-Agent": "dispatcher-health"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # nosec B310
            return int(response.status), bytes(response.read(65536))
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read(65536))


def check_gateway(options: Options) -> Health:
    """``/readyz`` answers 200 with every dependency ``ok``."""
    url = options.url or GATEWAY_URL
    try:
        status, body = _get(url, options.timeout)
    except (OSError, urllib.error.URLError) as exc:
        return Health("gateway", False, f"{url}: {_reason(exc)}")
    try:
        checks = dict(json.loads(body).get("checks") or {})
    except (ValueError, AttributeError):
        checks = {}
    failing = sorted(name for name, value in checks.items() if value != "ok")
    detail = f"{url}: {status}" + (f" ({', '.join(failing)} not ok)" if failing else "")
    return Health("gateway", status == 200, detail, checks)


def check_flower(options: Options) -> Health:
    """Flower's ``/healthcheck`` (never behind auth) answers ``OK``."""
    url = options.url or FLOWER_URL
    try:
        status, body = _get(url, options.timeout)
    except (OSError, urllib.error.URLError) as exc:
        return Health("flower", False, f"{url}: {_reason(exc)}")
    healthy = status == 200 and body.strip() == b"OK"
    return Health("flower", healthy, f"{url}: {status}")


def node_name(template: str | None) -> str:
    """A Celery node name with ``%h`` (host name) and ``%n`` (its first label) filled in."""
    host = socket.gethostname()
    name = template or "celery@%h"
    if "@" not in name:
        name = f"{name}@%h"
    return name.replace("%h", host).replace("%n", host.split(".")[0]).replace("%%", "%")


def check_worker(options: Options, settings: Settings) -> Health:
    """The worker node answers a ping through the broker."""
    from celery import Celery

    node = node_name(options.node)
    app = Celery("dispatcher-health", broker=settings.broker_url, set_as_current=False)
    try:
        replies = app.control.ping(destination=[node], timeout=options.timeout)
    except Exception as exc:  # any broker error means "cannot tell": unhealthy
        return Health("worker", False, f"{node}: broker error {type(exc).__name__}")
    finally:
        app.close()
    answered = any(node in reply for reply in replies or [])
    return Health("worker", answered, f"{node}: {'pong' if answered else 'no answer'}")


def check_beat(options: Options, now: float | None = None) -> Health:
    """The schedule file (or the files dbm made of it) was written within ``max_age``."""
    path = options.schedule_file or Path(SCHEDULE_FILE)
    candidates = [path, *(path.with_name(path.name + s) for s in (".db", ".dat", ".dir"))]
    written = [p.stat().st_mtime for p in candidates if p.exists()]
    if not written:
        return Health("beat", False, f"{path}: no schedule file")
    age = (time.time() if now is None else now) - max(written)
    healthy = age <= options.max_age
    return Health("beat", healthy, f"{path}: written {age:.0f}s ago (limit {options.max_age:.0f}s)")


def check_migrate(options: Options) -> Health:
    """The database the migrations run on answers."""
    with open_dispatcher() as d:
        try:
            d.store.ping()
        except Exception as exc:  # any driver error means "not reachable"
            return Health("migrate", False, f"database: {type(exc).__name__}")
    return Health("migrate", True, "database: ok")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    return str(reason) or type(exc).__name__


def run_check(role: str, options: Options) -> Health:
    """The health of ``role``."""
    if role == "gateway":
        return check_gateway(options)
    if role == "flower":
        return check_flower(options)
    if role == "beat":
        return check_beat(options)
    if role == "migrate":
        return check_migrate(options)
    try:
        settings = Settings.from_env()
    except DispatcherError as exc:
        raise fail(str(exc), FOUND) from None
    return check_worker(options, settings)


@click.command()
@click.argument("role", type=click.Choice([*ROLES, "auto"]), default="auto")
@click.option("--url", help="gateway/flower: the URL to ask (default: from the command line).")
@click.option("--node", help="worker: the node name (default celery@<host name>).")
@click.option("--schedule-file", type=click.Path(path_type=Path), help="beat: its schedule file.")
@click.option(
    "--max-age",
    type=float,
    default=SCHEDULE_MAX_AGE,
    show_default=True,
    help="beat: oldest the schedule file may be, in seconds.",
)
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--pid", type=int, default=1, hidden=True, help="auto: the process to read.")
def health(
    role: str,
    url: str | None,
    node: str | None,
    schedule_file: Path | None,
    max_age: float,
    timeout: float,
    as_json: bool,
    pid: int,
) -> None:
    """Check that this container's role is healthy (exit 0) or not (exit 1).

    ROLE is gateway, worker, beat, flower, migrate, or auto (read from the command line
    of the container's first process).
    """
    options = Options()
    if role == "auto":
        role, options = role_of(process_argv(pid))
    options.url = url or options.url
    options.node = node or options.node
    options.schedule_file = schedule_file or options.schedule_file
    options.max_age = max_age
    options.timeout = timeout
    result = run_check(role, options)
    if as_json:
        click.echo(json.dumps(asdict(result), sort_keys=True))
    else:
        click.echo(
            f"{result.role}: {'healthy' if result.healthy else 'UNHEALTHY'}: {result.detail}"
        )
    raise SystemExit(0 if result.healthy else 1)
