"""One typed settings object read from ``DISPATCHER_*`` environment variables.

Channel settings live in their own groups with their own prefixes
(``DISPATCHER_SMTP_*``, ``DISPATCHER_PUSH_*``, ``DISPATCHER_GATEWAY_*``) so that each
channel module reads only what it needs. Defaults run on one machine: a SQLite file
in the working directory and Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import pydantic
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from dispatcher.errors import ConfigurationError

_S = TypeVar("_S", bound=BaseSettings)

#: The ``templates/`` folder that ships next to the package.


def _seed_templates_dir() -> Path:
    """The seed templates: inside the installed wheel (``dispatcher/seed_templates``,
    mapped from the repository's ``templates/`` at build time), or that folder itself
    in a source checkout and an editable install."""
    package = Path(__file__).resolve().parent
    installed = package / "seed_templates"
    return installed if installed.is_dir() else package.parent / "templates"


DEFAULT_TEMPLATES_DIR = _seed_templates_dir()


class SmtpSettings(BaseSettings):
    """Email over SMTP (``DISPATCHER_SMTP_*``). No host means email is not configured."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_SMTP_", extra="ignore")

    #: SMTP server's host name; unset means email is not configured.
    host: str | None = None
    #: SMTP server's port (587 for STARTTLS, 465 for implicit TLS).
    port: int = 587
    #: "starttls" (require STARTTLS), "tls" (implicit TLS, usually port 465) or "none".
    security: Literal["starttls", "tls", "none"] = "starttls"
    #: SMTP login, if the server wants one.
    username: str | None = None
    #: SMTP password (never logged).
    password: SecretStr | None = None
    #: Seconds to wait for the SMTP server on connect and on each command.
    timeout: float = Field(default=10.0, gt=0)
    #: Persistent connections per worker process; a batch is sent over all of them.
    pool_size: int = Field(default=4, ge=1, le=64)
    #: ``From`` of every email: a mailbox, with a display name if you like.
    from_address: str = "Dispatcher <notifications@example.com>"
    #: ``Reply-To`` mailbox of every email; unset sends none.
    reply_to: str | None = None
    #: Sends of one email before a transient failure becomes final.
    max_attempts: int = Field(default=8, ge=1)
    #: First retry delay after a transient SMTP failure; it doubles per attempt.
    backoff_base_seconds: float = Field(default=30.0, ge=0)
    #: Longest retry delay after a transient SMTP failure.
    backoff_cap_seconds: float = Field(default=3600.0, ge=0)
    #: Verify the server's TLS certificate (keep on outside tests).
    validate_certs: bool = True
    #: CA bundle for a private mail server's certificate.
    ca_file: str | None = None
    #: Name sent in EHLO; defaults to this machine's FQDN.
    local_hostname: str | None = None
    #: Right-hand side of ``Message-ID``; defaults to the From address's domain.
    message_id_domain: str | None = None
    #: How long the one-click unsubscribe links in emails keep working.
    unsubscribe_ttl_days: int = Field(default=60, ge=1)


class PushSettings(BaseSettings):
    """Web push with VAPID (``DISPATCHER_PUSH_*``). No private key means push is off."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_PUSH_", extra="ignore")

    #: VAPID private key (PEM or base64url); unset (and no key file) turns web push off.
    vapid_private_key: SecretStr | None = None
    #: File holding the VAPID private key, instead of the variable (for secrets mounted as
    #: files).
    vapid_private_key_file: Path | None = None
    #: VAPID public key (base64url) that browsers subscribe with; ``dispatcher vapid`` makes a
    #: pair.
    vapid_public_key: str | None = None
    #: VAPID ``sub`` claim: a ``mailto:`` or ``https:`` contact for push services.
    vapid_subject: str = "mailto:admin@localhost"
    #: Seconds per push request; never unbounded (a silent push service would hang).
    timeout: float = Field(default=10.0, gt=0)
    #: Push requests in flight at once per worker process.
    concurrency: int = Field(default=64, gt=0)
    #: TTL for types without ``push_ttl_seconds``; 0 would drop pushes to offline devices.
    default_ttl_seconds: int = Field(default=86400, gt=0)
    #: Accept ``http://`` push endpoints on loopback addresses (tests and local push services
    #: only).
    allow_insecure_loopback: bool = False
    #: Sends of one push before a transient failure becomes final.
    max_attempts: int = 8
    #: First retry delay after a transient push failure; it doubles per attempt.
    backoff_base_seconds: float = 30.0
    #: Longest retry delay after a transient push failure.
    backoff_cap_seconds: float = 3600.0

    def private_key_text(self) -> str | None:
        """The VAPID private key as text, from the variable or else from the file.

        Raises:
            ConfigurationError: the file is named but cannot be read.
        """
        if self.vapid_private_key is not None and self.vapid_private_key.get_secret_value():
            return self.vapid_private_key.get_secret_value().strip()
        if self.vapid_private_key_file is not None:
            try:
                return self.vapid_private_key_file.read_text().strip()
            except OSError as exc:
                raise ConfigurationError(
                    f"DISPATCHER_PUSH_VAPID_PRIVATE_KEY_FILE: cannot read "
                    f"{str(self.vapid_private_key_file)!r}: {exc.strerror}"
                ) from None
        return None

    def is_configured(self) -> bool:
        """Whether a VAPID private key is given (variable or file)."""
        return bool(
            (self.vapid_private_key is not None and self.vapid_private_key.get_secret_value())
            or self.vapid_private_key_file is not None
        )


class GatewaySettings(BaseSettings):
    """The in-app gateway: JWT auth and limits (``DISPATCHER_GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_GATEWAY_", extra="ignore")

    #: Secret of HS256/384/512 tokens your app signs for the gateway's clients.
    jwt_secret: SecretStr | None = None
    #: PEM public key of RS*/ES*/EdDSA tokens, instead of a shared secret.
    jwt_public_key: str | None = None
    #: Algorithm the gateway's JWTs are signed with.
    jwt_algorithm: str = "HS256"
    #: Required ``aud`` claim of the tokens; unset checks none.
    jwt_audience: str | None = None
    #: Required ``iss`` claim of the tokens; unset checks none.
    jwt_issuer: str | None = None
    #: Base URL at which clients reach the gateway (links in emails use
    #: ``DISPATCHER_PUBLIC_URL``).
    public_url: str = "http://127.0.0.1:8000"
    #: Largest request body, and WebSocket message, the gateway accepts.
    max_body_bytes: int = 64 * 1024
    #: REST requests one token may make per minute (counted in Redis, across gateways).
    requests_per_minute: int = 600
    #: Open WebSockets one subscriber may hold across gateways.
    max_connections_per_subscriber: int = 10
    #: Seconds between heartbeat messages and protocol pings on a WebSocket.
    heartbeat_seconds: float = 20.0
    #: Messages waiting for one slow WebSocket before it is told to resync.
    socket_queue_size: int = 256
    #: Most notifications one ``resume`` replays; beyond that the client is told to resync.
    resume_limit: int = 1000
    #: Page size cap of ``GET /api/notifications``.
    max_page_size: int = 200
    #: Redis connections one gateway process may hold (callers wait for a free one).
    redis_pool_size: int = 50
    #: Longest a client may take to send a request's line and headers (a WebSocket
    #: handshake included); a slower one gets 408 and its connection is closed.
    request_head_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    #: ``Strict-Transport-Security: max-age=…`` on every answer; set it (31536000, a year)
    #: only when browsers reach the gateway over HTTPS alone. 0 sends no header.
    hsts_seconds: int = Field(default=0, ge=0)
    #: Origins (``https://app.example.com``) whose pages may call the REST API from the
    #: browser; empty means no cross-origin access. Comma-separated or a JSON list.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @pydantic.field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                try:
                    value = json.loads(value)
                except ValueError:
                    raise ValueError("not a JSON list of origins") from None
            else:
                value = [o for o in value.split(",") if o.strip()]
        if isinstance(value, list):
            return [_origin(o) if isinstance(o, str) else o for o in value]
        return value


def _origin(value: str) -> str:
    """``scheme://host[:port]`` exactly as a browser sends it in ``Origin``."""
    value = value.strip()
    if value == "*":
        raise ValueError("list the frontend's origins one by one; '*' is not allowed")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"{value!r} is not an origin (scheme://host[:port], no path)")
    return value.lower()


class Settings(BaseSettings):
    """Everything ``dispatcher`` reads from the environment (``DISPATCHER_*``)."""

    model_config = SettingsConfigDict(env_prefix="DISPATCHER_", extra="ignore")

    #: SQLAlchemy URL of the store; SQLite runs in WAL mode.
    database_url: str = "sqlite:///dispatcher.db"
    #: Celery broker.
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: Redis for pub/sub (real-time inbox) and rate-limit counters.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Key prefix in Redis, so several deployments can share one server.
    redis_prefix: str = "dispatcher"
    #: Folder of the built-in file templates.
    templates_dir: Path = DEFAULT_TEMPLATES_DIR
    #: The app's own template folders, searched before ``templates_dir``.
    #: Comma-separated (``/a,/b``) or a JSON list.
    extra_templates_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    #: How stale a worker's view of operators' template overrides may be, in seconds.
    template_refresh_seconds: float = 2.0
    #: Longest one template part may take to render before the delivery fails (and
    #: before a save is refused); ordinary parts take about a millisecond.
    template_time_limit_seconds: float = Field(default=0.25, gt=0, le=30)
    #: Most characters one template part may render to. No string or list a template
    #: builds may be larger, and one render may build four times this in all.
    template_output_max_chars: int = Field(default=256 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: Locale used when a subscriber has none and as the last fallback.
    default_locale: str = "en"
    #: Dotted module names imported at start-up to register the app's own types.
    #: Comma-separated (``app.types,billing.types``) or a JSON list.
    types_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: How long a worker holds a claimed delivery before the sweep may take it back.
    lease_seconds: int = 300
    #: Deliveries per ``dispatcher.deliver`` task.
    delivery_batch_size: int = 500
    #: Events with at most this many deliveries are delivered by the fan-out task itself,
    #: saving a trip through the broker (0 turns this off).
    inline_delivery_limit: int = Field(default=20, ge=0)
    #: A direct event with at least this many recipients is fanned out set-based, as a
    #: campaign chunk is (in-app written with ``INSERT … SELECT``); 0 turns this off.
    bulk_fanout_threshold: int = Field(default=200, ge=0)
    #: Fan-out drains of one kind (priority, direct or campaign) that may run at once; 0
    #: means 2 on PostgreSQL (concurrent drains take disjoint events) and 1 on SQLite
    #: (one writer: a second drain would only wait for the first).
    fanout_drains: int = Field(default=0, ge=0, le=64)
    #: Rows older than this with no worker on them are re-rung by the sweep.
    sweep_grace_seconds: int = 30
    #: Workers send Celery task events from the start. Flower switches them on by
    #: itself (``enable_events`` every few seconds) while it runs, so leave this off
    #: unless another monitor needs them: they cost three broker messages per task.
    task_events: bool = False
    #: Secret used to sign unsubscribe links and other tokens.
    signing_secret: SecretStr = SecretStr("change-me-in-production")
    #: Public base URL of the gateway (links in emails).
    public_url: str = "http://127.0.0.1:8000"
    #: Keep sent/failed/skipped deliveries this many days before purging.
    retention_days: int = 90
    #: Queues a worker consumes, most urgent first: short (``urgent``) or full
    #: (``dispatcher.urgent``) names, comma-separated or a JSON list. Empty means every
    #: queue. A ``-Q`` on the worker's command line wins.
    worker_queues: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Pool processes per worker; 0 means one per CPU. A ``-c`` on the command line wins.
    worker_concurrency: int = Field(default=0, ge=0, le=1024)
    #: A worker process's liveness key expires this many seconds after the process
    #: dies; the sweep then takes back its claims instead of waiting out their lease.
    liveness_seconds: float = Field(default=10.0, ge=1, le=300)
    #: Messages sent between two writes of their outcomes (and lease renewals); 0: as
    #: many as the channel has on the wire at once (SMTP connections, push requests).
    record_group_size: int = Field(default=0, ge=0)
    #: How long ``notify`` may wait to connect to the broker (and Redis, for the
    #: fan-out latch) before it gives up ringing; the sweep rings later.
    ring_timeout_seconds: float = Field(default=0.25, gt=0, le=10)
    #: After a failed ring, stop trying for this many seconds (rings are skipped at once).
    ring_pause_seconds: float = Field(default=5.0, ge=0, le=600)
    #: Rewrite the links of emails (``href`` and bare URLs) and web pushes (``url``)
    #: through the gateway's signed ``/c/{token}`` redirect, which records each click.
    #: Off by default; no tracking pixel is ever added.
    click_tracking: bool = False
    #: How long a tracked link keeps redirecting (and counting).
    click_ttl_days: int = Field(default=90, ge=1)
    #: Clients allowed to read the gateway's ``/metrics`` (CIDR networks); the default
    #: keeps it on the machine itself. Put the gateway behind a proxy that forwards
    #: ``/metrics`` only from the monitoring network if you widen this.
    metrics_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )
    #: ``text`` (``event key=value``) or ``json`` (one object per line) log lines.
    log_format: Literal["text", "json"] = "text"
    #: Recipients per campaign chunk: one transaction and one pipelined publish each.
    #: Unset: 5,000 on PostgreSQL, 1,000 on SQLite (where a chunk holds the one writer
    #: lock, so every other write, an urgent ``notify`` too, waits for it).
    campaign_chunk_size: int | None = Field(default=None, ge=1, le=100_000)
    #: A running campaign run whose cursor has not moved for this long is rung again by
    #: beat (its chunk message was lost with a worker).
    campaign_stall_seconds: int = Field(default=15, ge=1)

    #: Put before every table name (``dispatcher_`` makes ``dispatcher_events``…,
    #: and the Alembic version table ``dispatcher_alembic_version``), so the tables can
    #: live in an app's database. Workers, beat and the app must use the same prefix.
    table_prefix: str = Field(default="", pattern=r"^([a-z][a-z0-9_]{0,30})?$")

    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)

    def drain_slots(self) -> int:
        """How many fan-out drains of one kind run at once (see ``fanout_drains``)."""
        if self.fanout_drains:
            return self.fanout_drains
        from sqlalchemy.engine import make_url

        postgres = make_url(self.database_url).get_backend_name() == "postgresql"
        return 2 if postgres else 1

    @pydantic.field_validator("worker_queues", mode="before")
    @classmethod
    def _queue_list(cls, value: object) -> object:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                try:
                    return json.loads(value)
                except ValueError:
                    raise ValueError("not a JSON list of queue names") from None
            return [q.strip() for q in value.split(",") if q.strip()]
        return value

    @pydantic.field_validator(
        "extra_templates_dirs", "types_modules", "metrics_allow", mode="before"
    )
    @classmethod
    def _lists(cls, value: object) -> object:
        return split_list(value)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Read the environment; raise :class:`ConfigurationError` naming a bad variable."""
        groups: dict[str, Any] = {
            "smtp": SmtpSettings,
            "push": PushSettings,
            "gateway": GatewaySettings,
        }
        for name, group in groups.items():
            if name not in overrides:
                overrides[name] = _load(group)
        return _load(cls, **overrides)


def split_list(value: object) -> object:
    """A list setting's text as a list: a JSON list (``["/a", "/b"]``) or comma-separated
    values (``/a,/b``; blanks around each dropped, empty ones ignored)."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        try:
            loaded = json.loads(value)
        except ValueError:
            raise ValueError(
                "not a JSON list; give a JSON list or comma-separated values"
            ) from None
        return loaded
    return [item.strip() for item in value.split(",") if item.strip()]


def _load(cls: type[_S], **values: Any) -> _S:
    try:
        return cls(**values)
    except pydantic.ValidationError as exc:
        raise ConfigurationError(_describe(exc, cls)) from None
    except SettingsError as exc:
        # pydantic-settings could not decode a variable (its message is a traceback's
        # worth of text): name the variable in one line.
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigurationError(f"invalid configuration: {first}") from None


def _describe(exc: pydantic.ValidationError, cls: type[BaseSettings]) -> str:
    prefix = str(cls.model_config.get("env_prefix", ""))
    problems = []
    for err in exc.errors():
        # A list item's index is not part of the variable's name.
        field = ".".join(str(p) for p in err["loc"] if not isinstance(p, int))
        variable = (prefix + field.replace(".", "_")).upper()
        problems.append(f"{variable}: {err['msg']}")
    return "invalid configuration: " + "; ".join(problems)
