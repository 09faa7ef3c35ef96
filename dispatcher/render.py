"""Rendering templates for a notification on one channel, in the recipient's locale.

Templates are Jinja2, run in an immutable sandbox with ``StrictUndefined`` (a missing
variable is an error, never a blank). HTML parts are autoescaped; subjects and plain
text are not (``Tom & Jerry`` stays ``Tom & Jerry`` in a subject).

File layout, under the templates folder::

    <type>/<locale>/<channel>/<part>.j2     e.g. ticket_created/es/email/subject.j2
    _layouts/...                            shared layouts that parts may extend
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dispatcher.errors import TemplateError, TemplateNotFoundError

#: Parts rendered with HTML autoescaping.
HTML_PARTS = frozenset({"html"})
#: Largest rendered part we accept, so a template cannot balloon a message.
MAX_OUTPUT_CHARS = 256 * 1024


def locale_chain(locale: str | None, default: str) -> list[str]:
    """``es-MX`` → ``["es-MX", "es", default]``, without repeats."""
    chain: list[str] = []
    if locale:
        normalised = locale.replace("_", "-")
        chain.append(normalised)
        base = normalised.split("-")[0]
        chain.append(base)
    chain.append(default)
    return list(dict.fromkeys(chain))


def template_name(type_name: str, locale: str, channel: str, part: str) -> str:
    return f"{type_name}/{locale}/{channel}/{part}.j2"


class Renderer:
    """Renders template parts from the templates folder, with compiled templates cached."""

    def __init__(self, templates_dirs: Sequence[Path], *, default_locale: str = "en") -> None:
        self.templates_dirs = [Path(p) for p in templates_dirs]
        self.default_locale = default_locale
        loader = jinja2.FileSystemLoader([str(p) for p in self.templates_dirs])
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "auto_reload": False,
            "cache_size": 2000,
            "keep_trailing_newline": False,
        }
        self.text_env = ImmutableSandboxedEnvironment(autoescape=False, **common)
        self.html_env = ImmutableSandboxedEnvironment(autoescape=True, **common)

    def env_for(self, part: str) -> ImmutableSandboxedEnvironment:
        return self.html_env if part in HTML_PARTS else self.text_env

    def find(self, type_name: str, channel: str, part: str, locale: str | None) -> str | None:
        """The template name that serves ``part`` for ``locale``, or None."""
        for candidate in locale_chain(locale, self.default_locale):
            name = template_name(type_name, candidate, channel, part)
            if any((folder / name).is_file() for folder in self.templates_dirs):
                return name
        return None

    def render(
        self,
        type_name: str,
        channel: str,
        parts: Iterable[str],
        locale: str | None,
        context: Mapping[str, Any],
        *,
        optional: Iterable[str] = (),
    ) -> dict[str, str]:
        """Render every part of ``channel`` for ``type_name``.

        Raises:
            TemplateNotFoundError: a required part has no template in the locale chain.
            TemplateError: a template failed; ``reason`` says why (``missing variable 'x'``).
        """
        optional = set(optional)
        out: dict[str, str] = {}
        for part in parts:
            name = self.find(type_name, channel, part, locale)
            if name is None:
                if part in optional:
                    continue
                raise TemplateNotFoundError(
                    f"no template for {type_name}/{channel}/{part} in locales "
                    f"{locale_chain(locale, self.default_locale)}",
                    reason=f"no template {type_name}/{channel}/{part}",
                )
            out[part] = self.render_file(name, part, context)
        return out

    def render_file(self, name: str, part: str, context: Mapping[str, Any]) -> str:
        try:
            template = self.env_for(part).get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"{name}:{exc.lineno}: {exc.message}",
                reason=f"syntax error at line {exc.lineno}: {exc.message}",
                line=exc.lineno,
            ) from None
        return self.render_template(template, name, context)

    @staticmethod
    def render_template(template: jinja2.Template, name: str, context: Mapping[str, Any]) -> str:
        try:
            text = template.render(context)
        except jinja2.UndefinedError as exc:
            reason = _missing_variable(exc)
            raise TemplateError(f"{name}: {reason}", reason=reason) from None
        except SecurityError as exc:
            raise TemplateError(f"{name}: unsafe template: {exc}", reason="unsafe") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{name}: {exc}", reason=str(exc)) from None
        except Exception as exc:  # a filter or test raising on the data
            raise TemplateError(
                f"{name}: {type(exc).__name__}: {exc}", reason=f"{type(exc).__name__}: {exc}"
            ) from None
        if len(text) > MAX_OUTPUT_CHARS:
            raise TemplateError(
                f"{name}: output of {len(text)} characters exceeds {MAX_OUTPUT_CHARS}",
                reason="output too large",
            )
        return text.strip()


def _missing_variable(exc: jinja2.UndefinedError) -> str:
    message = exc.message or str(exc)
    # Jinja says "'seller' is undefined" or "'dict object' has no attribute 'seller'".
    if message.endswith(" is undefined"):
        return f"missing variable {message[: -len(' is undefined')]}"
    if "has no attribute" in message:
        return "missing variable " + message.rsplit("has no attribute ", 1)[1]
    return message
