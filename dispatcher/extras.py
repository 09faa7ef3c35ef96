"""Optional dependencies: which extra of the package brings which modules.

``pip install dispatcher`` brings what an app needs to notify (the API, the store,
Celery to ring) and what a worker needs for in-app and email. The rest comes with an
extra; code that needs one imports it inside :func:`needs`, which turns a missing
module into a :class:`~dispatcher.errors.MissingExtraError` naming the extra to
install (as ``dramatiq.results.backends`` does for its optional backends)::

    with needs("gateway", "the gateway"):
        import fastapi
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dispatcher.errors import MissingExtraError

#: Extra → the top-level modules it installs that our code imports.
EXTRAS: dict[str, frozenset[str]] = {
    "gateway": frozenset({"fastapi", "starlette", "uvicorn", "cryptography", "py_vapid"}),
    "webpush": frozenset({"pywebpush", "aiohttp", "cryptography", "py_vapid", "http_ece"}),
    "postgres": frozenset({"psycopg", "psycopg_binary"}),
    "flower": frozenset({"flower"}),
    "django": frozenset({"django"}),
}


def extra_for(module: str | None) -> str | None:
    """The extra that installs ``module`` (a dotted name), or None if none does."""
    if not module:
        return None
    root = module.partition(".")[0]
    return next((extra for extra, modules in EXTRAS.items() if root in modules), None)


@contextmanager
def needs(extra: str, feature: str) -> Iterator[None]:
    """Turn a missing module of ``extra`` inside the block into a
    :class:`MissingExtraError` saying ``feature`` needs ``pip install dispatcher[extra]``.

    Other import errors (a module of no extra, a bug) propagate unchanged.
    """
    try:
        yield
    except ImportError as exc:
        if exc.name is None or extra_for(exc.name) is None:
            raise
        raise MissingExtraError(extra, feature, exc.name) from exc
