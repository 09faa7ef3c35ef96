"""``dispatcher`` inside a Django project.

Add ``"dispatcher.contrib.django"`` to ``INSTALLED_APPS``; settings come from
``settings.DISPATCHER`` (a dict of the ``DISPATCHER_*`` names without the prefix),
falling back to the environment, and to Django's own database when no
``DATABASE_URL`` is given. Then::

    from dispatcher.contrib.django import notify

    with transaction.atomic():
        ticket = Ticket.objects.create(...)
        notify("ticket_created", to=str(ticket.owner_id), data={...})

Modules: ``conf`` (settings and the one :class:`~dispatcher.Dispatcher` per process),
``outbox`` (``notify`` in Django's transaction), ``users`` (subscribers follow
``AUTH_USER_MODEL``), ``apps`` (the app config that connects the signals), and the
``manage.py dispatcher`` command.
"""

from dispatcher.extras import needs

with needs("django", "dispatcher.contrib.django"):
    import django  # noqa: F401

from dispatcher.contrib.django.conf import get_dispatcher, reset_dispatcher
from dispatcher.contrib.django.outbox import notify
from dispatcher.contrib.django.users import subscriber_fields, sync_users

__all__ = ["get_dispatcher", "notify", "reset_dispatcher", "subscriber_fields", "sync_users"]
