"""Database failures an operator can fix, told as one line with the fix.

The CLI (and anything else facing a person) asks :func:`database_problem` what a
driver error means before showing it: an unreachable server, a missing or old schema.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from dispatcher.errors import (
    DatabaseNotMigratedError,
    DatabaseUnavailableError,
    DispatcherError,
)

#: PostgreSQL's SQLSTATEs for a missing table and a missing column.
_MISSING = {"42P01", "42703"}
_SQLITE_MISSING = ("no such table", "no such column", "has no column named")


def shown_url(url: URL | str) -> str:
    """``url`` without its password."""
    try:
        return (make_url(url) if isinstance(url, str) else url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported elsewhere, by name
        return "<unparsable URL>"


def database_problem(exc: BaseException, url: URL | str) -> DispatcherError | None:
    """What ``exc`` means for an operator of the database at ``url``, or None if it is
    not a problem of the database's availability or schema."""
    if not isinstance(exc, DBAPIError):
        return None
    parsed = make_url(url) if isinstance(url, str) else url
    shown = shown_url(parsed)
    orig = exc.orig
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    if getattr(orig, "sqlstate", None) in _MISSING or any(
        marker in first_line for marker in _SQLITE_MISSING
    ):
        return DatabaseNotMigratedError(
            f"the database at {shown} has no dispatcher schema or an old one ({first_line}): "
            "run `dispatcher migrate`"
        )
    if isinstance(exc, (OperationalError, InterfaceError)):
        if parsed.get_backend_name() == "sqlite":
            return DatabaseUnavailableError(
                f"cannot use the SQLite database {parsed.database!r} ({first_line}): "
                "does its folder exist, and may this user write there?"
            )
        where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
        return DatabaseUnavailableError(
            f"cannot reach the database at {shown} ({first_line}): "
            f"is PostgreSQL running at {where}?"
        )
    return None
