"""``manage.py dispatcher …``: the ``dispatcher`` CLI with the project's settings.

``manage.py dispatcher migrate|send|explain|stats|deliveries|templates…`` runs the
operators' command of that name against the dispatcher ``settings.DISPATCHER``
describes (Django's database by default); ``manage.py dispatcher sync-subscribers``
backfills a subscriber for every existing user.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from dispatcher.contrib.django.conf import database_alias, environ, environment
from dispatcher.contrib.django.users import sync_users


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no types
    help = (
        "The dispatcher CLI with this project's settings: migrate, send, explain, stats, "
        "deliveries, templates…; sync-subscribers backfills subscribers from users."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("words", nargs=argparse.REMAINDER, help="dispatcher CLI arguments")

    def run_from_argv(self, argv: list[str]) -> None:
        # click parses the rest (its own --help included), not Django's argparse.
        self.execute(*argv[2:], prog_name=f"{argv[0]} {argv[1]}")

    def execute(self, *args: Any, **options: Any) -> None:
        words = list(options.pop("words", None) or args)
        prog_name = options.pop("prog_name", "manage.py dispatcher")
        if words[:1] == ["sync-subscribers"]:
            users = get_user_model()._default_manager.db_manager(database_alias())
            written = sync_users(users.order_by("pk").iterator())
            self.stdout.write(f"{written} subscribers written from {database_alias()!r}")
            return
        from dispatcher.cli import main

        with environ(environment()):
            try:
                main.main(args=words, prog_name=prog_name, standalone_mode=False)
            except SystemExit as exc:  # --help and the like
                if exc.code:
                    raise
            except Exception as exc:
                import click

                if isinstance(exc, click.ClickException):
                    raise CommandError(exc.format_message()) from None
                raise
