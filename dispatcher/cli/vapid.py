"""``dispatcher vapid``: create and inspect the VAPID key pair web push signs with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from dispatcher.cli.output import emit, json_option
from dispatcher.errors import ConfigurationError
from dispatcher.extras import needs
from dispatcher.settings import PushSettings


@click.group()
def vapid() -> None:
    """VAPID keys for web push (DISPATCHER_PUSH_VAPID_*)."""


def _vapid() -> Any:
    """The VAPID module, or a clean CLI error naming the extra it needs."""
    # A missing extra is a MissingExtraError: the CLI group prints it in one line (exit 3).
    with needs("webpush", "`dispatcher vapid`"):
        from dispatcher.channels.web_push import vapid as module
    return module


@vapid.command()
@click.option(
    "--subject",
    default="mailto:admin@localhost",
    show_default=True,
    help="Contact push services may use: a mailto: address or an https:// URL.",
)
@click.option(
    "--private-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the private key as PEM to this new file (mode 0600).",
)
@json_option
def generate(subject: str, private_key_file: Path | None, as_json: bool) -> None:
    """Create a key pair and print the settings to paste.

    The public key is the frontend's applicationServerKey for
    pushManager.subscribe(). Keep the private key secret: anyone holding it can push
    to your subscribers. Changing it invalidates every existing subscription.
    """
    module = _vapid()
    try:
        module.check_subject(subject)
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--subject") from None
    key = module.VapidKey.generate()
    if private_key_file is not None:
        try:
            fd = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise click.ClickException(
                f"cannot create {private_key_file}: {exc.strerror}"
            ) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(key.private_pem())
    if as_json:
        settings = {
            "DISPATCHER_PUSH_VAPID_PUBLIC_KEY": key.public_key_b64,
            "DISPATCHER_PUSH_VAPID_SUBJECT": subject,
        }
        if private_key_file is not None:
            settings["DISPATCHER_PUSH_VAPID_PRIVATE_KEY_FILE"] = str(private_key_file.resolve())
        else:
            settings["DISPATCHER_PUSH_VAPID_PRIVATE_KEY"] = key.private_key_b64
        emit(settings)
        return
    if private_key_file is not None:
        click.echo(f"# private key written to {private_key_file}")
        click.echo(f"DISPATCHER_PUSH_VAPID_PRIVATE_KEY_FILE={private_key_file.resolve()}")
    else:
        click.echo("# secret: keep it out of version control")
        click.echo(f"DISPATCHER_PUSH_VAPID_PRIVATE_KEY={key.private_key_b64}")
    click.echo("# public: the frontend's applicationServerKey (base64url)")
    click.echo(f"DISPATCHER_PUSH_VAPID_PUBLIC_KEY={key.public_key_b64}")
    click.echo(f"DISPATCHER_PUSH_VAPID_SUBJECT={subject}")


@vapid.command("public-key")
@json_option
def public_key(as_json: bool) -> None:
    """Print the applicationServerKey of the configured private key."""
    try:
        key = _vapid().VapidKey.from_settings(PushSettings())
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        emit({"public_key": key.public_key_b64})
        return
    click.echo(key.public_key_b64)
