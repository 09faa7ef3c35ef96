"""The ``dispatcher`` command group: help on ``-h``, one line instead of a traceback.

Every command runs inside :class:`DispatcherGroup`, which turns the failures an
operator can fix into one line on stderr naming the fix, and an exit code:

====  ===========================================================================
code  meaning
====  ===========================================================================
0     done; nothing wrong
1     the command ran and found something wrong (``doctor`` found a problem, an
      import had bad rows, a retry named deliveries that had not failed)
2     usage or input error: a bad option, an unknown type, id or file, bad data
3     the environment is not ready: a setting is invalid, the database or Redis
      does not answer, the schema is missing or old, the database URL is unsupported
====  ===========================================================================

With ``--json``, the same error is also printed on stdout as ``{"error": ..., "exit_code": n}``
so a script reading JSON always gets JSON. Anything else is a bug: it keeps its
traceback.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import click
import redis
from kombu.exceptions import OperationalError as KombuOperationalError

from dispatcher.dispatcher import operator_problem
from dispatcher.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    DatabaseNotMigratedError,
    DatabaseUnavailableError,
    DispatcherError,
)
from dispatcher.settings import Settings

OK, FOUND, USAGE, UNAVAILABLE = 0, 1, 2, 3

#: Signing secret the settings ship with; anything signed with it can be forged.
DEFAULT_SECRET = "change-me-in-production"

#: Shown when the signing secret is still the default.
SECRET_WARNING = (
    "warning: DISPATCHER_SIGNING_SECRET is the default, so anyone can forge unsubscribe "
    "links and tokens; set it to a random value: "
    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
)


class Failure(click.ClickException):
    """A failure with the fix, shown as one line with its exit code."""

    def __init__(self, message: str, exit_code: int, as_json: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click declares a class default
        self.as_json = as_json

    def show(self, file: Any = None) -> None:
        if self.as_json:
            click.echo(json.dumps({"error": self.message, "exit_code": self.exit_code}))
        click.echo(f"error: {self.message}", err=True)


def default_secret(settings: Settings) -> bool:
    """The signing secret is still the one the settings ship with."""
    return settings.signing_secret.get_secret_value() == DEFAULT_SECRET


def local(settings: Settings) -> bool:
    """A development setup: the gateway's public URL is on this machine, so no link
    signed with the secret leaves it. Anywhere else the default secret is a hole."""
    host = urlsplit(settings.public_url).hostname or ""
    return host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost")


def _settings() -> Settings | None:
    try:
        return Settings.from_env()
    except ConfigurationError:
        return None


def _redis_line(exc: BaseException, settings: Settings | None) -> str:
    where = "the configured Redis"
    if settings is not None:
        urls = dict.fromkeys([settings.broker_url, settings.redis_url])
        where = " / ".join(_hide(u) for u in urls)
    return (
        f"cannot reach Redis at {where} ({type(exc).__name__}: {exc}): is Redis running there? "
        "(DISPATCHER_BROKER_URL, DISPATCHER_REDIS_URL)"
    )


def _hide(url: str) -> str:
    """A Redis URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def failure_for(exc: BaseException, *, as_json: bool = False) -> Failure | None:
    """The one-line failure for ``exc``, or None when it is a bug (keep the traceback)."""
    settings = _settings()
    problem: BaseException | None = exc
    if settings is not None and not isinstance(exc, DispatcherError):
        problem = operator_problem(exc, settings) or exc
    if isinstance(
        problem, (ConfigurationError, DatabaseNotMigratedError, DatabaseUnavailableError)
    ):
        return Failure(str(problem), UNAVAILABLE, as_json)
    if isinstance(problem, (redis.RedisError, KombuOperationalError, BrokerUnavailableError)):
        return Failure(_redis_line(problem, settings), UNAVAILABLE, as_json)
    if isinstance(problem, DispatcherError):
        return Failure(str(problem), USAGE, as_json)
    return None


class DispatcherGroup(click.Group):
    """A click group whose commands all accept ``-h`` and whose known failures end in
    one line with the fix (see the module docstring for exit codes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("context_settings", {}).setdefault("help_option_names", ["-h", "--help"])
        super().__init__(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        as_json = "--json" in ctx.args  # (the first token, the command, is not in args)
        settings = _settings()
        if settings is not None and default_secret(settings) and not local(settings):
            click.echo(SECRET_WARNING, err=True)
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            if isinstance(exc, Failure):
                exc.as_json = exc.as_json or as_json
                raise
            if as_json or exc.exit_code == 1:  # a command's own ClickException: its input
                code = USAGE if exc.exit_code == 1 else exc.exit_code
                raise Failure(exc.format_message(), code, as_json) from None
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            failure = failure_for(exc, as_json=as_json)
            if failure is None:
                raise
            raise failure from None


def fail(message: str, code: int = USAGE) -> Failure:
    """A failure to raise from a command: ``raise fail("no such file")``."""
    return Failure(message, code)
