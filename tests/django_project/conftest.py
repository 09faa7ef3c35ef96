"""A Django project sharing its databases with the dispatcher: SQLite ("default") and
PostgreSQL ("postgres"), the very databases the suite's ``dispatcher`` fixture, workers
and gateways use, so Django's tables and ours live side by side.

Django is configured here, when this folder is collected, so only these tests see
Django settings; pytest-django's database fixtures then work as usual
(``django_db_setup`` is overridden to use those existing databases).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings
from sqlalchemy.engine import make_url

from dispatcher import Dispatcher
from tests.conftest import PG_ADMIN_URL, PG_DB

#: Django alias of each backend of the suite.
ALIASES = {"sqlite": "default", "postgres": "postgres"}

_pg = make_url(PG_ADMIN_URL)
if not settings.configured:
    settings.configure(
        SECRET_KEY="django-project-tests",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "dispatcher.contrib.django",
            "tests.django_project.tickets",
        ],
        DATABASES={
            # NAME is set to the suite's SQLite file by django_db_setup.
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "",
                "OPTIONS": {"transaction_mode": "IMMEDIATE"},
            },
            "postgres": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": PG_DB,
                "USER": _pg.username or "",
                "PASSWORD": _pg.password or "",
                "HOST": _pg.host or "",
                "PORT": str(_pg.port or ""),
            },
        },
        ROOT_URLCONF="tests.django_project.urls",
        MIDDLEWARE=[],
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        TICKETS_DATABASE="default",
        DISPATCHER={},
    )
    django.setup()


@pytest.fixture(scope="session")
def django_db_setup(_migrated: dict[str, str], django_db_blocker: Any) -> None:
    """Django's tables in the suite's own (already migrated) databases."""
    from django.core.management import call_command
    from django.db import connections

    sqlite_file = make_url(_migrated["sqlite"]).database
    settings.DATABASES["default"]["NAME"] = sqlite_file
    connections["default"].settings_dict["NAME"] = sqlite_file
    with django_db_blocker.unblock():
        for alias in ALIASES.values():
            call_command("migrate", database=alias, run_syncdb=True, verbosity=0)


@pytest.fixture
def alias(backend: str) -> str:
    return ALIASES[backend]


@pytest.fixture
def project(dispatcher: Dispatcher, alias: str, settings: Any) -> Iterator[Dispatcher]:
    """``settings.DISPATCHER`` pointing at the suite's broker and Redis, with the database
    left to Django's; yields the project's dispatcher (built by the contrib app)."""
    from dispatcher.contrib.django import get_dispatcher, reset_dispatcher

    s = dispatcher.settings
    settings.TICKETS_DATABASE = alias
    settings.DISPATCHER = {
        "DATABASE_ALIAS": alias,
        "BROKER_URL": s.broker_url,
        "REDIS_URL": s.redis_url,
        "REDIS_PREFIX": s.redis_prefix,
        "TYPES_MODULES": list(s.types_modules),
        "EXTRA_TEMPLATES_DIRS": [str(p) for p in s.extra_templates_dirs],
    }
    reset_dispatcher()
    d = get_dispatcher()
    assert make_url(d.settings.database_url) == make_url(s.database_url)
    yield d
    reset_dispatcher()
