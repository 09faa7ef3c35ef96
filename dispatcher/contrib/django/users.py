"""Subscribers follow ``AUTH_USER_MODEL``.

Saving a user upserts its subscriber (id, email, locale, time zone); deleting it
deletes the subscriber. When the dispatcher shares Django's database, the upsert runs
in the same transaction as the save (a user created and notified in one transaction
is a known recipient); otherwise it runs once the transaction commits.

Where a project keeps locale and time zone is its own business: by default they are
read from the user's ``locale`` and ``timezone`` attributes when it has them. Point
``settings.DISPATCHER["SUBSCRIBER_FIELDS"]`` at your own function to say otherwise::

    def subscriber_fields(user):
        if not user.is_active:
            return None  # not a subscriber
        return {"id": str(user.pk), "email": user.email,
                "locale": user.profile.language, "timezone": user.profile.tz}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models.signals import post_delete, post_save
from django.utils.module_loading import import_string

from dispatcher.contrib.django.conf import database_alias, get_dispatcher, option, shares_database
from dispatcher.contrib.django.outbox import borrowed_session
from dispatcher.errors import ConfigurationError

#: Users per transaction when backfilling.
CHUNK = 1000
_UID = "dispatcher.contrib.django.users"


def subscriber_fields(user: Any) -> dict[str, Any] | None:
    """The default mapping: ``id`` is the primary key as text; ``email``, and ``locale``
    and ``timezone`` when the user model has such attributes. None means "no subscriber"."""
    fields: dict[str, Any] = {"id": str(user.pk), "email": getattr(user, "email", None) or None}
    for name in ("locale", "timezone"):
        value = getattr(user, name, None)
        if value:
            fields[name] = str(value)
    return fields


def _fields_hook() -> Callable[[Any], dict[str, Any] | None]:
    hook = option("SUBSCRIBER_FIELDS", subscriber_fields)
    if isinstance(hook, str):
        hook = import_string(hook)
    if not callable(hook):
        raise ConfigurationError("settings.DISPATCHER['SUBSCRIBER_FIELDS'] must be callable")
    return hook  # type: ignore[no-any-return]


def sync_users(users: Iterable[Any], *, using: str | None = None) -> int:
    """Upsert the subscribers of ``users``, :data:`CHUNK` per transaction; returns how
    many were written. ``manage.py dispatcher sync-subscribers`` backfills them all."""
    hook = _fields_hook()
    d = get_dispatcher()
    alias = using or database_alias()
    written = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal written
        if not batch:
            return
        if shares_database(alias, d.settings):
            with transaction.atomic(using=alias), borrowed_session(alias) as session:
                for fields in batch:
                    d.subscribers.upsert(session=session, **fields)
        else:
            with d.store.session(write=True) as session:
                for fields in batch:
                    d.subscribers.upsert(session=session, **fields)
        written += len(batch)
        batch.clear()

    for user in users:
        fields = hook(user)
        if fields is not None:
            batch.append(fields)
        if len(batch) >= CHUNK:
            flush()
    flush()
    return written


def _saved(sender: Any, instance: Any, using: str, raw: bool = False, **_: Any) -> None:
    if raw:  # loaddata: fixtures are not users signing up
        return
    fields = _fields_hook()(instance)
    if fields is None:
        return
    d = get_dispatcher()
    if connections[using].in_atomic_block and shares_database(using, d.settings):
        with borrowed_session(using) as session:
            d.subscribers.upsert(session=session, **fields)
    elif connections[using].in_atomic_block:
        transaction.on_commit(lambda: d.subscribers.upsert(**fields), using=using, robust=True)
    else:
        d.subscribers.upsert(**fields)


def _deleted(sender: Any, instance: Any, using: str, **_: Any) -> None:
    fields = _fields_hook()(instance)
    if fields is None:
        return
    d = get_dispatcher()
    transaction.on_commit(lambda: d.subscribers.delete(fields["id"]), using=using, robust=True)


def connect() -> None:
    """Connect the signals for ``AUTH_USER_MODEL`` (the app does it in ``ready``)."""
    model = settings.AUTH_USER_MODEL
    post_save.connect(_saved, sender=model, dispatch_uid=_UID + ".saved")
    post_delete.connect(_deleted, sender=model, dispatch_uid=_UID + ".deleted")
