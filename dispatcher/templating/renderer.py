"""Rendering templates for a notification on one channel, in the recipient's locale.

Templates are Jinja2, run in an immutable sandbox with ``StrictUndefined`` (a missing
variable is an error, never a blank) and a per-render budget of time, size and loop
iterations (see :mod:`dispatcher.templating.sandbox`). HTML parts are autoescaped;
subjects and plain text are not (``Tom & Jerry`` stays ``Tom & Jerry`` in a subject).

File layout, under the templates folder::

    <type>/<locale>/<channel>/<part>.j2     e.g. ticket_created/es/email/subject.j2
    _layouts/...                            shared layouts that parts may extend

Operators may override any part in the database (:mod:`dispatcher.templating.versions`).
For each locale of the chain (``es-MX`` → ``es`` → default), the newest active database
version wins over the file of the same name; then the next locale is tried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from dispatcher.errors import TemplateError, TemplateLimitError, TemplateNotFoundError
from dispatcher.templating import filters
from dispatcher.templating.campaign_sources import CampaignSources, is_content_key
from dispatcher.templating.limits import (
    DEFAULT_TIME_LIMIT,
    MAX_OUTPUT_CHARS,
    RenderBudget,
    RenderLimitError,
    RenderLimits,
    current_budget,
)
from dispatcher.templating.overrides import (
    OverrideSnapshot,
    TemplateOverrides,
    template_name,
)
from dispatcher.templating.sandbox import GuardedEnvironment
from dispatcher.validation import describe_char, first_unstorable

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "HTML_PARTS",
    "MAX_OUTPUT_CHARS",
    "Renderer",
    "locale_chain",
    "template_name",
]

#: Parts rendered with HTML autoescaping.
HTML_PARTS = frozenset({"html"})


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


class _OverrideLoader(jinja2.BaseLoader):
    """Serves the database versions of the current snapshot by their template names."""

    def __init__(self, snapshot: Callable[[], OverrideSnapshot]) -> None:
        self._snapshot = snapshot

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        override = self._snapshot().by_name.get(template)
        if override is None:
            raise jinja2.TemplateNotFound(template)
        return override.source, f"db:{template}@v{override.version}", lambda: True


class _CampaignLoader(jinja2.BaseLoader):
    """Serves campaigns' own templates by their names (``@key/...``)."""

    def __init__(self, sources: CampaignSources | None) -> None:
        self._sources = sources

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        source = self._sources.source(template) if self._sources is not None else None
        if source is None:
            raise jinja2.TemplateNotFound(template)
        # Campaign templates never change under their key.
        return source, f"campaign:{template}", lambda: True


class Renderer:
    """Renders template parts from database overrides and the templates folders.

    Compiled templates are cached; the cache is dropped when the overrides change.

    Parameters:
        templates_dirs: Folders searched in order (the app's first, the built-in last).
        default_locale: Last step of every locale chain.
        overrides: Operators' database versions; None renders files only.
        time_limit: Seconds one part may take to render.
        output_limit: Characters one part may render to; no value a template builds
            may be larger, and one render may build four times this in all.
        campaign_sources: Campaigns' own templates, rendered when the "type name" given
            to :meth:`render` is a campaign's content key.
    """

    def __init__(
        self,
        templates_dirs: Sequence[Path],
        *,
        default_locale: str = "en",
        overrides: TemplateOverrides | None = None,
        time_limit: float = DEFAULT_TIME_LIMIT,
        output_limit: int = MAX_OUTPUT_CHARS,
        campaign_sources: CampaignSources | None = None,
    ) -> None:
        self.campaign_sources = campaign_sources
        self.templates_dirs = [Path(p) for p in templates_dirs]
        self.default_locale = default_locale
        self.overrides = overrides
        self.limits = RenderLimits(seconds=time_limit, max_chars=output_limit)
        self._snapshot = OverrideSnapshot()
        self._found: dict[tuple[str, str, str, str | None], str | None] = {}
        loader = jinja2.ChoiceLoader(
            [
                _CampaignLoader(campaign_sources),
                _OverrideLoader(lambda: self._snapshot),
                jinja2.FileSystemLoader([str(p) for p in self.templates_dirs]),
            ]
        )
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": jinja2.StrictUndefined,
            "auto_reload": False,
            "cache_size": 2000,
            "keep_trailing_newline": False,
        }
        self.text_env = GuardedEnvironment(autoescape=False, **common)
        self.html_env = GuardedEnvironment(autoescape=True, **common)
        for env in (self.text_env, self.html_env):
            filters.install(env, default_locale=default_locale)

    def env_for(self, part: str) -> GuardedEnvironment:
        return self.html_env if part in HTML_PARTS else self.text_env

    def sync(self) -> OverrideSnapshot:
        """Pick up override changes (at most one cheap query per refresh interval)."""
        if self.overrides is not None:
            snapshot = self.overrides.current()
            if snapshot is not self._snapshot:
                self._snapshot = snapshot
                self._found = {}
                self.text_env.cache.clear()  # type: ignore[union-attr]
                self.html_env.cache.clear()  # type: ignore[union-attr]
        return self._snapshot

    def file_for(self, name: str) -> Path | None:
        """The file serving template ``name``, if any folder has one."""
        for folder in self.templates_dirs:
            path = folder / name
            if path.is_file():
                return path
        return None

    def find(self, type_name: str, channel: str, part: str, locale: str | None) -> str | None:
        """The template name that serves ``part`` for ``locale``, or None."""
        return self._find(self.sync(), type_name, channel, part, locale)

    def _find(
        self,
        snapshot: OverrideSnapshot,
        type_name: str,
        channel: str,
        part: str,
        locale: str | None,
    ) -> str | None:
        key = (type_name, channel, part, locale)
        if key in self._found:
            return self._found[key]
        found = None
        if is_content_key(type_name):
            own = self.campaign_sources.sources(type_name) if self.campaign_sources else {}
            for candidate in locale_chain(locale, self.default_locale):
                name = template_name(type_name, candidate, channel, part)
                if name in own:
                    found = name
                    break
            if own:  # an unknown key may be committed a moment later: not cached
                self._found[key] = found
            return found
        for candidate in locale_chain(locale, self.default_locale):
            name = template_name(type_name, candidate, channel, part)
            if name in snapshot.by_name or self.file_for(name) is not None:
                found = name
                break
        self._found[key] = found
        return found

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
        snapshot = self.sync()  # one freshness check for all parts
        for part in parts:
            name = self._find(snapshot, type_name, channel, part, locale)
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

    def load(self, name: str, part: str) -> jinja2.Template:
        """The compiled template ``name`` (cached).

        Raises:
            TemplateError: it does not parse; ``line`` says where.
        """
        try:
            return self.env_for(part).get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or exc.name or name
            raise TemplateError(
                f"{where}:{exc.lineno}: {exc.message}",
                reason=f"syntax error at line {exc.lineno}: {exc.message}",
                line=exc.lineno,
            ) from None
        except (RenderLimitError, RecursionError) as exc:
            raise compile_limit_error(name, exc) from None

    def render_file(self, name: str, part: str, context: Mapping[str, Any]) -> str:
        """Render the template called ``name`` (a database version or a file)."""
        return self.render_template(self.load(name, part), name, context)

    def compile_source(self, source: str, part: str) -> jinja2.Template:
        """Compile a candidate source (not cached), as :meth:`load` would.

        Raises:
            TemplateError: with ``line`` and the parser's reason.
        """
        try:
            return self.env_for(part).from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"line {exc.lineno}: {exc.message}",
                reason=f"syntax error at line {exc.lineno}: {exc.message}",
                line=exc.lineno,
            ) from None
        except (RenderLimitError, RecursionError) as exc:
            raise compile_limit_error("<template>", exc) from None

    def render_template(
        self, template: jinja2.Template, name: str, context: Mapping[str, Any]
    ) -> str:
        """Render ``template`` within the time, size and iteration budget.

        The output is counted chunk by chunk as it is generated, so a render stops as
        soon as it passes the output limit, not after building the whole string.

        Raises:
            TemplateLimitError: the render went over a limit; ``reason`` starts with
                ``render limit:`` and names it.
            TemplateError: ``reason`` is short (``missing variable 'seller'``); ``line`` is
                the template line where it happened, when known.
        """
        limits = self.limits
        budget = RenderBudget.start(limits)
        token = current_budget.set(budget)
        chunks: list[str] = []
        size = 0
        try:
            for chunk in template.generate(context):
                size += len(chunk)
                if size > limits.max_chars:
                    raise RenderLimitError(f"output exceeds {limits.max_chars} characters")
                chunks.append(chunk)
                budget.check_time()
        except jinja2.UndefinedError as exc:
            reason = _missing_variable(exc)
            if reason.startswith("missing variable '__"):
                # Undefined because the sandbox hid it, further down a chain of escapes.
                reason = f"unsafe: access to attribute {reason[len('missing variable ') :]} refused"
            raise _error(name, reason, exc) from None
        except RenderLimitError as exc:
            raise _error(name, f"render limit: {exc}", exc, TemplateLimitError) from None
        except SecurityError as exc:
            raise _error(name, f"unsafe: {exc}", exc) from None
        except jinja2.TemplateSyntaxError as exc:  # in a template pulled in by extends/include
            where = exc.filename or exc.name or name
            raise TemplateError(
                f"{where}:{exc.lineno}: {exc.message}",
                reason=f"syntax error in {exc.name or where} at line {exc.lineno}: {exc.message}",
                line=exc.lineno,
            ) from None
        except jinja2.TemplateNotFound as exc:  # extends/include of a name that does not exist
            raise _error(name, f"template {exc.name!r} not found", exc) from None
        except jinja2.TemplateError as exc:
            raise _error(name, str(exc), exc) from None
        except RecursionError as exc:
            raise _error(
                name, "render limit: recursion too deep", exc, TemplateLimitError
            ) from None
        except MemoryError as exc:
            raise _error(name, "render limit: out of memory", exc, TemplateLimitError) from None
        except Exception as exc:  # a filter or test raising on the data
            # Such messages may quote the data: keep the reason short.
            raise _error(name, f"{type(exc).__name__}: {str(exc)[:200]}", exc) from None
        finally:
            current_budget.reset(token)
        output = "".join(chunks).strip()
        index = first_unstorable(output)
        if index is not None:
            # From a string escape in the template (``"\\x00"``) or a stored payload older
            # than the door's check: PostgreSQL would refuse it on every retry.
            reason = f"unstorable output: {describe_char(output[index])} at position {index}"
            raise TemplateError(f"{name}: {reason}", reason=reason)
        return output


def compile_limit_error(name: str, exc: RenderLimitError | RecursionError) -> TemplateLimitError:
    """The error for a template too complex or too deeply nested to compile."""
    reason = (
        f"render limit: {exc}"
        if isinstance(exc, RenderLimitError)
        else "render limit: template nested too deeply to compile"
    )
    return TemplateLimitError(f"{name}: {reason}", reason=reason)


def _error(
    name: str, reason: str, exc: BaseException, kind: type[TemplateError] = TemplateError
) -> TemplateError:
    where, line = _locate(exc.__traceback__)
    prefix = f"{where or name}:{line}" if line else (where or name)
    return kind(f"{prefix}: {reason}", reason=reason, line=line)


def _locate(tb: TracebackType | None) -> tuple[str | None, int | None]:
    """The innermost template frame of a traceback Jinja rewrote: (file, line)."""
    where: str | None = None
    line: int | None = None
    while tb is not None:
        # Jinja's rewritten template frames carry this marker in their globals.
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            where, line = tb.tb_frame.f_code.co_filename, tb.tb_lineno
        tb = tb.tb_next
    return where, line


def _missing_variable(exc: jinja2.UndefinedError) -> str:
    message = exc.message or str(exc)
    # Jinja says "'seller' is undefined" or "'dict object' has no attribute 'seller'".
    if message.endswith(" is undefined"):
        return f"missing variable {message[: -len(' is undefined')]}"
    if "has no attribute" in message:
        return "missing variable " + message.rsplit("has no attribute ", 1)[1]
    return message
