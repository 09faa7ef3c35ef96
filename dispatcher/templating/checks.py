"""Sample contexts, previews and the ``templates validate`` sweep.

A template is checked the way a worker would render it: with the type's ``example``
payload (validated, so in its JSON form), a sample recipient in the template's locale
and the same variables the delivery pipeline passes (see
:meth:`dispatcher.engine.compose.Composer.context`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from dispatcher.catalog import Catalog, NotificationType
from dispatcher.channels.base import Channel
from dispatcher.channels.runtime import ChannelRuntime
from dispatcher.clock import utcnow
from dispatcher.errors import TemplateError, UnknownEventTypeError
from dispatcher.subscribers.recipient import Recipient
from dispatcher.templating.context import template_context
from dispatcher.templating.limits import RenderLimitError
from dispatcher.templating.overrides import Override
from dispatcher.templating.renderer import Renderer, compile_limit_error

#: A type's digest templates for a channel live in ``<type>/<locale>/<channel>_digest/``.
DIGEST_SUFFIX = "_digest"

#: Time zone of the sample recipient: it has DST, so date filters show real conversions.
SAMPLE_TIMEZONE = "Europe/Madrid"


def sample_recipient(locale: str) -> Recipient:
    """A made-up subscriber who reads ``locale`` and lives in Madrid."""
    return Recipient(
        id=0,
        external_id="sample-subscriber",
        locale=locale,
        timezone=SAMPLE_TIMEZONE,
        addresses={"email": "sample.subscriber@example.com"},
    )


def sample_context(
    notification_type: NotificationType,
    channel: Channel | None,
    locale: str,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What a template of ``notification_type`` sees at send time, with sample values.

    Raises:
        PayloadValidationError: ``data`` does not fit the type's payload.
    """
    payload = notification_type.validate(notification_type.example if data is None else data)
    return template_context(
        data=payload,
        recipient=sample_recipient(locale),
        notification_type=notification_type,
        notification_id=0,
        priority=notification_type.priority,
        created_at=utcnow(),
        channel=channel,
    )


@dataclass(frozen=True)
class TemplateProblem:
    """One template that would fail: ``location`` is ``file:line`` when known."""

    location: str
    reason: str

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


def compile_named(
    renderer: Renderer, source: str, part: str, name: str, filename: str
) -> jinja2.Template:
    """Compile ``source`` (not cached) so that errors point at ``filename``.

    Raises:
        TemplateError: it does not parse, with the line.
        TemplateLimitError: it is too complex or too deeply nested to compile.
    """
    env = renderer.env_for(part)
    try:
        code = env.compile(source, name, filename)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            f"{filename}:{exc.lineno}: {exc.message}",
            reason=f"syntax error at line {exc.lineno}: {exc.message}",
            line=exc.lineno,
        ) from None
    except (RenderLimitError, RecursionError) as exc:
        raise compile_limit_error(filename, exc) from None
    return env.template_class.from_code(env, code, env.make_globals(None), None)


class TemplateChecker:
    """Renders every template file and database override with sample data."""

    def __init__(self, renderer: Renderer, catalog: Catalog, channels: ChannelRuntime) -> None:
        self.renderer = renderer
        self.catalog = catalog
        self.channels = channels

    def check_source(
        self,
        type_name: str,
        channel_name: str,
        locale: str,
        part: str,
        source: str,
        *,
        filename: str,
    ) -> str:
        """Compile and render one part; return the output.

        Raises:
            TemplateError: the reason, and the line where it failed.
        """
        notification_type = self.catalog.get(type_name)
        channel = self.channels.get(channel_name)
        name = f"{type_name}/{locale}/{channel_name}/{part}.j2"
        template = compile_named(self.renderer, source, part, name, filename)
        context = sample_context(notification_type, channel, locale)
        return self.renderer.render_template(template, name, context)

    def validate(self, overrides: Mapping[str, Override]) -> list[TemplateProblem]:
        """Every problem in the template folders, the database overrides and coverage."""
        problems: list[TemplateProblem] = []
        for folder in self.renderer.templates_dirs:
            for path in sorted(folder.rglob("*.j2")):
                problems.extend(self._check_file(folder, path))
        for override in overrides.values():
            try:
                self.check_source(
                    override.type,
                    override.channel,
                    override.locale,
                    override.part,
                    override.source,
                    filename=f"db:{override.name}@v{override.version}",
                )
            except (TemplateError, UnknownEventTypeError) as exc:
                problems.append(_problem(f"db:{override.name}@v{override.version}", exc))
        problems.extend(self._missing_parts())
        return problems

    def _check_file(self, folder: Path, path: Path) -> Iterator[TemplateProblem]:
        relative = path.relative_to(folder)
        parts = relative.parts
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            yield TemplateProblem(str(path), f"cannot read: {exc}")
            return
        digest = len(parts) == 4 and parts[2].endswith(DIGEST_SUFFIX)
        # Shared layouts and partials, the generic digest and a type's digest templates
        # (they read ``items``, which a type's example does not give): syntax only.
        if parts[0].startswith("_") or digest:
            part = "html" if ".html" in path.name else "text"
            try:
                compile_named(self.renderer, source, part, relative.as_posix(), str(path))
            except TemplateError as exc:
                yield _problem(str(path), exc)
            return
        if len(parts) != 4:
            yield TemplateProblem(
                str(path), "not in the <type>/<locale>/<channel>/<part>.j2 layout"
            )
            return
        type_name, locale, channel_name, filename = parts
        part = filename[: -len(".j2")]
        if type_name not in self.catalog:
            yield TemplateProblem(
                str(path),
                f"unknown notification type {type_name!r} (is DISPATCHER_TYPES_MODULES set?)",
            )
            return
        channel = self.channels.get(channel_name)
        if channel is None:
            yield TemplateProblem(
                str(path),
                f"unknown channel {channel_name!r}; known: {', '.join(self.channels.registry)}",
            )
            return
        if part not in (*channel.parts, *channel.optional_parts):
            yield TemplateProblem(
                str(path),
                f"{channel_name} has no part {part!r}; parts: "
                f"{', '.join((*channel.parts, *channel.optional_parts))}",
            )
            return
        try:
            self.check_source(type_name, channel_name, locale, part, source, filename=str(path))
        except TemplateError as exc:
            yield _problem(str(path), exc)

    def _missing_parts(self) -> Iterator[TemplateProblem]:
        default = self.renderer.default_locale
        for notification_type in self.catalog:
            for channel_name in notification_type.channels:
                channel = self.channels.get(channel_name)
                if channel is None:
                    continue
                for part in channel.parts:
                    if part in channel.optional_parts:
                        continue
                    if self.renderer.find(notification_type.name, channel_name, part, None):
                        continue
                    yield TemplateProblem(
                        f"{notification_type.name}/{default}/{channel_name}/{part}.j2",
                        "missing: no template in the default locale",
                    )


def _problem(location: str, exc: Exception) -> TemplateProblem:
    if isinstance(exc, TemplateError):
        # The message already starts with "file:line" (possibly a layout's file).
        message = str(exc)
        where, sep, reason = message.partition(": ")
        if sep and (where.startswith((location, "db:", "/", "<")) or where.endswith(".j2")):
            return TemplateProblem(where, reason)
        return TemplateProblem(f"{location}:{exc.line}" if exc.line else location, exc.reason)
    return TemplateProblem(location, str(exc))
