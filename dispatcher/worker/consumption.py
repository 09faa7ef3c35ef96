"""What one worker process consumes and with how many pool processes, from settings.

One image runs every worker; ``DISPATCHER_WORKER_QUEUES`` and
``DISPATCHER_WORKER_CONCURRENCY`` make it an urgent/high worker or a bulk worker
without a different command line. Options given on the command line (``-Q``, ``-c``)
still win, as Celery's own do.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup

from dispatcher import names
from dispatcher.errors import ConfigurationError
from dispatcher.settings import Settings


def queue_names(settings: Settings) -> list[str]:
    """The full names of ``settings.worker_queues`` (``urgent`` → ``dispatcher.urgent``).

    Raises:
        ConfigurationError: a name is not one of :data:`dispatcher.names.ALL`.
    """
    chosen: list[str] = []
    for name in settings.worker_queues:
        full = name if name in names.ALL else f"{names.PREFIX}.{name}"
        if full not in names.ALL:
            known = ", ".join(q.removeprefix(f"{names.PREFIX}.") for q in names.ALL)
            raise ConfigurationError(
                f"DISPATCHER_WORKER_QUEUES: unknown queue {name!r} (known: {known})"
            )
        if full not in chosen:
            chosen.append(full)
    return chosen


def configure(app: Celery, settings: Settings) -> None:
    """Give ``app``'s workers the settings' concurrency and queues."""
    if settings.worker_concurrency:
        app.conf.worker_concurrency = settings.worker_concurrency
    queues = queue_names(settings)
    if not queues:
        return

    def select(sender: str, instance: Any, **_: Any) -> None:
        # Sent after -Q was applied: only a worker of this app with no -Q is changed.
        selected = instance.app.amqp.queues
        if instance.app is app and getattr(selected, "_consume_from", None) is None:
            selected.select(queues)

    celeryd_after_setup.connect(select, weak=False)
