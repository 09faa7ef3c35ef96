"""Settings from ``settings.DISPATCHER``, and the one dispatcher of the process.

``settings.DISPATCHER`` takes the names of the ``DISPATCHER_*`` environment variables
without the prefix (``{"BROKER_URL": "redis://…", "SMTP_HOST": "mail"}``); a name it
does not give is read from the environment as usual, so workers configured by
environment variables and the Django process agree. Three names are Django's own:

* ``DATABASE_ALIAS`` (``"default"``): the Django database the dispatcher shares. With
  no ``DATABASE_URL`` anywhere, the dispatcher's tables live in that database.
* ``SUBSCRIBER_FIELDS``: a callable (or its dotted path) mapping a user to the
  subscriber's fields; see :func:`dispatcher.contrib.django.users.subscriber_fields`.
* ``SYNC_SUBSCRIBERS`` (True): keep subscribers in step with ``AUTH_USER_MODEL``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from sqlalchemy.engine import URL, make_url

from dispatcher.dispatcher import Dispatcher
from dispatcher.errors import ConfigurationError
from dispatcher.settings import Settings

#: Keys of ``settings.DISPATCHER`` that are not ``DISPATCHER_*`` variables.
DJANGO_OPTIONS = frozenset({"DATABASE_ALIAS", "SUBSCRIBER_FIELDS", "SYNC_SUBSCRIBERS"})
_ENV_LOCK = threading.Lock()
_lock = threading.Lock()
_dispatcher: Dispatcher | None = None
#: Called by :func:`reset_dispatcher`: what other modules built from the settings.
ON_RESET: list[Callable[[], None]] = []


def configured() -> Mapping[str, Any]:
    """``settings.DISPATCHER``, checked to be a dict."""
    value = getattr(settings, "DISPATCHER", None) or {}
    if not isinstance(value, Mapping):
        raise ConfigurationError("settings.DISPATCHER must be a dict")
    return value


def option(name: str, default: Any = None) -> Any:
    """One of the Django-only options (:data:`DJANGO_OPTIONS`)."""
    return configured().get(name, default)


def database_alias() -> str:
    """The Django database the dispatcher's tables live in, or sit beside."""
    alias = option("DATABASE_ALIAS", "default")
    if alias not in settings.DATABASES:
        raise ConfigurationError(
            f"settings.DISPATCHER['DATABASE_ALIAS']: no database {alias!r} in DATABASES"
        )
    return str(alias)


def environment() -> dict[str, str]:
    """``settings.DISPATCHER`` as ``DISPATCHER_*`` variables, plus the database URL of
    Django's database when neither Django's settings nor the environment name one."""
    overlay: dict[str, str] = {}
    for key, value in configured().items():
        if key in DJANGO_OPTIONS:
            continue
        overlay[f"DISPATCHER_{key.upper()}"] = _as_variable(value)
    if "DISPATCHER_DATABASE_URL" not in overlay and "DISPATCHER_DATABASE_URL" not in os.environ:
        overlay["DISPATCHER_DATABASE_URL"] = django_database_url(database_alias())
    return overlay


def _as_variable(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    return json.dumps(value, default=str)


@contextmanager
def environ(overlay: Mapping[str, str]) -> Iterator[None]:
    """The process environment with ``overlay`` on top, restored afterwards."""
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in overlay}
        os.environ.update(overlay)
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old


def build_settings() -> Settings:
    """The dispatcher's settings for this Django project."""
    with environ(environment()):
        return Settings.from_env()


def get_dispatcher() -> Dispatcher:
    """The process's dispatcher, built on first use from Django's settings."""
    global _dispatcher
    if _dispatcher is None:
        with _lock:
            if _dispatcher is None:
                _dispatcher = Dispatcher(build_settings())
    return _dispatcher


def reset_dispatcher() -> None:
    """Close the process's dispatcher; the next :func:`get_dispatcher` builds a new one
    (after a settings change, e.g. in tests)."""
    global _dispatcher
    with _lock:
        if _dispatcher is not None:
            _dispatcher.close()
        _dispatcher = None
    for forget in ON_RESET:
        forget()


def django_database_url(alias: str) -> str:
    """A SQLAlchemy URL for Django's database ``alias`` (SQLite or PostgreSQL)."""
    db = connections[alias].settings_dict
    vendor = connections[alias].vendor
    if vendor == "sqlite":
        name = str(db["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise ConfigurationError(
                f"Django database {alias!r} is in memory; workers cannot share it: "
                "give it a file, or set DISPATCHER_DATABASE_URL"
            )
        return f"sqlite:///{Path(name).resolve()}"
    if vendor == "postgresql":
        url = URL.create(
            "postgresql+psycopg",
            username=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=int(db["PORT"]) if db.get("PORT") else None,
            database=db.get("NAME") or None,
        )
        return url.render_as_string(hide_password=False)
    raise ConfigurationError(
        f"Django database {alias!r} is {vendor}; dispatcher shares SQLite and PostgreSQL "
        "databases only: set DISPATCHER_DATABASE_URL"
    )


def shares_database(alias: str, settings_: Settings) -> bool:
    """Whether the dispatcher's database is Django's database ``alias``: then ``notify``
    writes in Django's transaction."""
    try:
        ours = make_url(settings_.database_url)
        theirs = make_url(django_database_url(alias))
    except ConfigurationError:
        return False
    if ours.get_backend_name() != theirs.get_backend_name():
        return False
    if ours.get_backend_name() == "sqlite":
        return bool(ours.database) and Path(ours.database or "").resolve() == Path(
            theirs.database or ""
        )
    return (ours.host or "localhost", ours.port or 5432, ours.database) == (
        theirs.host or "localhost",
        theirs.port or 5432,
        theirs.database,
    )
