"""What a worker process builds: the Celery app and its tasks, thin wrappers over the
engine (:class:`~dispatcher.worker.runtime.Runtime`).

``worker.py`` at the top of the repository is ``create_app()`` plus the beat schedule;
``celery -A worker worker|beat|flower`` runs it. Nothing in the package imports this
room except the tools that start workers.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals

from dispatcher import log
from dispatcher.engine.broker import celery_app
from dispatcher.settings import Settings
from dispatcher.worker.consumption import configure
from dispatcher.worker.runtime import Runtime
from dispatcher.worker.tasks import register_tasks


def create_app(settings: Settings | None = None) -> Celery:
    """The Celery app with dispatcher's tasks, for ``settings`` (default: the environment)."""
    settings = settings or Settings.from_env()
    app = celery_app(settings)
    register_tasks(app)
    configure(app, settings)
    if settings.log_format == "json":
        signals.after_setup_logger.connect(_json_logs, weak=False)
        signals.after_setup_task_logger.connect(_json_logs, weak=False)
    return app


def _json_logs(logger: logging.Logger, **_: Any) -> None:
    """``DISPATCHER_LOG_FORMAT=json``: Celery's handlers (worker and tasks) print JSON."""
    for handler in logger.handlers:
        handler.setFormatter(log.JsonFormatter())


__all__ = ["Runtime", "create_app"]
