"""``dispatcher gateway``: run the in-app gateway under uvicorn."""

from __future__ import annotations

import click

from dispatcher import log
from dispatcher.cli.core import open_dispatcher
from dispatcher.errors import DispatcherError
from dispatcher.extras import needs


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log each request (tokens in paths are redacted).",
)
@click.option("--log-level", default="info", show_default=True)
def gateway(host: str, port: int, access_log: bool, log_level: str) -> None:
    """Serve the REST inbox and the WebSocket (DISPATCHER_GATEWAY_* settings)."""
    # A missing extra is a MissingExtraError: the CLI group prints it in one line (exit 3).
    with needs("gateway", "`dispatcher gateway`"):
        import uvicorn

        from dispatcher.gateway import create_app
        from dispatcher.gateway.handshake import protocol_classes
        from dispatcher.gateway.redaction import install

    d = open_dispatcher()
    try:
        app = create_app(dispatcher=d)
    except DispatcherError as exc:
        d.close()
        raise click.ClickException(str(exc)) from None
    http_protocol, ws_protocol = protocol_classes(d.settings.gateway)
    config = uvicorn.Config(
        app,
        # Deadlines and size limits on request heads and WebSocket handshakes.
        http=http_protocol,
        ws=ws_protocol,
        host=host,
        port=port,
        access_log=access_log,
        log_level=log_level,
        ws_max_size=max(d.settings.gateway.max_body_bytes, 4096),
        # Our own heartbeat messages keep proxies happy; protocol pings catch dead peers.
        ws_ping_interval=d.settings.gateway.heartbeat_seconds,
        ws_ping_timeout=d.settings.gateway.heartbeat_seconds,
    )
    server = uvicorn.Server(config)
    # uvicorn configures logging in Config(); attach the redaction filter after that.
    install()
    log.configure(d.settings.log_format, loggers=("uvicorn", "uvicorn.access", "uvicorn.error"))
    try:
        server.run()
    finally:
        d.close()
