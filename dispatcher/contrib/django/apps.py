"""The Django app: ``"dispatcher.contrib.django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class DispatcherConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    name = "dispatcher.contrib.django"
    label = "dispatcher"
    verbose_name = "Notifications (dispatcher)"

    def ready(self) -> None:
        from dispatcher.contrib.django import users
        from dispatcher.contrib.django.conf import option

        if option("SYNC_SUBSCRIBERS", True):
            users.connect()
