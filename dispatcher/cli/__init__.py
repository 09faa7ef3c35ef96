"""The ``dispatcher`` command for operators.

Each area keeps its commands in its own module here; :func:`main` adds them.
"""

from __future__ import annotations

import click

from dispatcher.cli.campaigns import campaigns
from dispatcher.cli.core import migrate
from dispatcher.cli.demo import demo
from dispatcher.cli.digests import digests
from dispatcher.cli.doctor import doctor
from dispatcher.cli.events import events
from dispatcher.cli.explain import explain
from dispatcher.cli.gateway import gateway
from dispatcher.cli.group import DispatcherGroup
from dispatcher.cli.health import health
from dispatcher.cli.operations import deliveries, send, stats
from dispatcher.cli.subscribers import subscribers
from dispatcher.cli.templates import templates
from dispatcher.cli.vapid import vapid


@click.group(cls=DispatcherGroup)
@click.version_option(package_name="dispatcher")
def main() -> None:
    """Operate a dispatcher: migrate, demo, send, explain, templates, deliveries..."""


main.add_command(migrate)
main.add_command(demo)
main.add_command(send)
main.add_command(deliveries)
main.add_command(stats)
main.add_command(templates)
main.add_command(vapid)
main.add_command(explain)
main.add_command(gateway)
main.add_command(health)
main.add_command(campaigns)
main.add_command(doctor)
main.add_command(subscribers)
main.add_command(events)
main.add_command(digests)
