"""The ``dispatcher`` command for operators.

Each area keeps its commands in its own module here; :func:`main` adds them.
"""

from __future__ import annotations

import click

from dispatcher.cli.core import migrate
from dispatcher.cli.gateway import gateway


@click.group()
@click.version_option(package_name="dispatcher")
def main() -> None:
    """Operate a dispatcher: migrate, demo, send, explain, templates, deliveries..."""


main.add_command(migrate)
main.add_command(gateway)
