"""``Dispatcher.templates``: operators' versioned template overrides in the database.

Every save is a new version (append-only history). The newest active version of a
part wins over the file; ``restore`` copies an older version's source into a new
version, and ``deactivate`` hands the part back to the file. Nothing is written unless
the source compiles and renders against the type's example payload.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from dispatcher import log
from dispatcher.arguments import checked_methods
from dispatcher.catalog import Catalog
from dispatcher.channels.runtime import ChannelRuntime
from dispatcher.db.engine import Store
from dispatcher.db.models import TemplateVersion
from dispatcher.errors import NotFoundError, TemplateNotFoundError, ValidationError
from dispatcher.subscribers.addresses import validate_locale
from dispatcher.templating.checks import TemplateChecker, TemplateProblem, sample_context
from dispatcher.templating.overrides import template_name
from dispatcher.templating.renderer import Renderer, locale_chain
from dispatcher.validation import check_storable

#: Largest template source an operator may save.
MAX_SOURCE_CHARS = 64 * 1024


@dataclass(frozen=True)
class TemplateVersionInfo:
    """One saved version of a template part."""

    id: int
    type: str
    channel: str
    locale: str
    part: str
    version: int
    source: str
    active: bool
    created_by: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: TemplateVersion) -> TemplateVersionInfo:
        return cls(
            row.id,
            row.type,
            row.channel,
            row.locale,
            row.part,
            row.version,
            row.source,
            row.active,
            row.created_by,
            row.created_at,
        )


@dataclass(frozen=True)
class EffectiveTemplate:
    """The source a worker would use for a part, and where it comes from."""

    name: str
    locale: str
    #: ``"database"`` or ``"file"``.
    origin: str
    source: str
    version: int | None = None
    path: Path | None = None


@checked_methods
class Templates:
    """Save, list, restore and deactivate database versions of template parts.

    Parameters:
        store: The database.
        catalog: Known notification types (their ``example`` payloads are the test data).
        renderer: Returns this process's renderer (created lazily).
        channels: Returns this process's channel instances (for their template variables).
    """

    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        renderer: Callable[[], Renderer],
        channels: Callable[[], ChannelRuntime],
    ) -> None:
        self.store = store
        self.catalog = catalog
        self._renderer = renderer
        self._channels = channels

    @property
    def checker(self) -> TemplateChecker:
        return TemplateChecker(self._renderer(), self.catalog, self._channels())

    def _check_key(self, type: str, channel: str, locale: str, part: str) -> str:
        self.catalog.get(type)  # UnknownEventTypeError names the known types
        registry = self._channels().registry
        if channel not in registry:
            raise ValidationError(f"unknown channel {channel!r}; known: {', '.join(registry)}")
        cls = registry.get(channel)
        parts = (*cls.parts, *cls.optional_parts)
        if part not in parts:
            raise ValidationError(f"{channel} has no part {part!r}; parts: {', '.join(parts)}")
        return validate_locale(locale)

    def save(
        self,
        type: str,
        channel: str,
        locale: str,
        part: str,
        source: str,
        *,
        created_by: str | None = None,
    ) -> TemplateVersionInfo:
        """Store ``source`` as the new active version of one part.

        Raises:
            UnknownEventTypeError, ValidationError: the part does not exist.
            InvalidLocaleError: ``locale`` is not a tag Babel knows.
            UnstorableValueError: ``source`` or ``created_by`` holds a NUL or a lone
                surrogate (which PostgreSQL cannot store); nothing is saved.
            TemplateError: the source does not compile or does not render with the type's
                example payload; ``line`` and ``reason`` say where and why. Nothing is saved.
        """
        locale = self._check_key(type, channel, locale, part)
        if not isinstance(source, str) or not source.strip():
            raise ValidationError("template source must be a non-empty string")
        if len(source) > MAX_SOURCE_CHARS:
            raise ValidationError(f"template source exceeds {MAX_SOURCE_CHARS} characters")
        check_storable(source, "template source")
        if created_by is not None:
            if not isinstance(created_by, str) or len(created_by) > 128:
                raise ValidationError("created_by must be a string of at most 128 characters")
            check_storable(created_by, "created_by")
        name = template_name(type, locale, channel, part)
        self.checker.check_source(type, channel, locale, part, source, filename=f"{name} (new)")
        for attempt in range(3):
            try:
                with self.store.session(write=True) as session:
                    latest = session.scalar(
                        select(func.max(TemplateVersion.version)).where(
                            *_key(type, channel, locale, part)
                        )
                    )
                    row = TemplateVersion(
                        type=type,
                        channel=channel,
                        locale=locale,
                        part=part,
                        version=(latest or 0) + 1,
                        source=source,
                        active=True,
                        created_by=created_by,
                    )
                    session.add(row)
                    session.flush()
                    info = TemplateVersionInfo.from_row(row)
                break
            except IntegrityError:  # another operator saved the same version number first
                if attempt == 2:
                    raise
        self._changed()
        log.info("templates.saved", template=name, version=info.version, created_by=created_by)
        return info

    def history(
        self, type: str, channel: str, locale: str, part: str
    ) -> builtins.list[TemplateVersionInfo]:
        """Every version of one part, newest first."""
        with self.store.session() as session:
            rows = session.scalars(
                select(TemplateVersion)
                .where(*_key(type, channel, locale, part))
                .order_by(TemplateVersion.version.desc())
            )
            return [TemplateVersionInfo.from_row(r) for r in rows]

    def list(
        self, *, type: str | None = None, channel: str | None = None, locale: str | None = None
    ) -> list[TemplateVersionInfo]:
        """The version in force of every overridden part (newest active), sorted by name."""
        _check_filters(type=type, channel=channel, locale=locale)
        stmt = select(TemplateVersion).where(TemplateVersion.active.is_(True))
        for column, value in (
            (TemplateVersion.type, type),
            (TemplateVersion.channel, channel),
            (TemplateVersion.locale, locale),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        with self.store.session() as session:
            newest: dict[tuple[str, str, str, str], TemplateVersion] = {}
            for row in session.scalars(stmt.order_by(TemplateVersion.version)):
                newest[(row.type, row.locale, row.channel, row.part)] = row
            return [TemplateVersionInfo.from_row(newest[k]) for k in sorted(newest)]

    def restore(
        self,
        type: str,
        channel: str,
        locale: str,
        part: str,
        version: int | None = None,
        *,
        created_by: str | None = None,
    ) -> TemplateVersionInfo:
        """Save an older version's source as the new active version.

        ``version=None`` restores the version before the one in force.

        Raises:
            NotFoundError: no such version (or nothing before the one in force).
            TemplateError: the old source no longer renders with today's example payload.
        """
        versions = self.history(type, channel, locale, part)
        if version is None:
            current = next((v for v in versions if v.active), None)
            older = [v for v in versions if current is None or v.version < current.version]
            if not older:
                raise NotFoundError(f"no earlier version of {type}/{locale}/{channel}/{part}")
            chosen = older[0]
        else:
            found = [v for v in versions if v.version == version]
            if not found:
                raise NotFoundError(f"no version {version} of {type}/{locale}/{channel}/{part}")
            chosen = found[0]
        return self.save(
            type,
            channel,
            locale,
            part,
            chosen.source,
            created_by=created_by or f"restore of v{chosen.version}",
        )

    def deactivate(
        self, type: str, channel: str, locale: str, part: str, *, version: int | None = None
    ) -> int:
        """Stop using database versions of a part (all, or one ``version``); the file, or an
        older active version, takes over. Returns how many versions were deactivated."""
        conditions = [*_key(type, channel, locale, part), TemplateVersion.active.is_(True)]
        if version is not None:
            conditions.append(TemplateVersion.version == version)
        with self.store.session(write=True) as session:
            result = session.execute(
                update(TemplateVersion).where(*conditions).values(active=False),
                execution_options={"synchronize_session": False},
            )
            count = int(result.rowcount)  # type: ignore[attr-defined]
        if count:
            self._changed()
            log.info(
                "templates.deactivated",
                template=template_name(type, locale, channel, part),
                count=count,
            )
        return count

    def effective(self, type: str, channel: str, locale: str, part: str) -> EffectiveTemplate:
        """The source a worker would render for ``part`` and a subscriber in ``locale``.

        Raises:
            TemplateNotFoundError: neither the database nor the files have one.
        """
        renderer = self._renderer()
        snapshot = renderer.sync()
        for candidate in locale_chain(locale, renderer.default_locale):
            name = template_name(type, candidate, channel, part)
            override = snapshot.by_name.get(name)
            if override is not None:
                return EffectiveTemplate(
                    name, candidate, "database", override.source, version=override.version
                )
            path = renderer.file_for(name)
            if path is not None:
                return EffectiveTemplate(
                    name, candidate, "file", path.read_text("utf-8"), path=path
                )
        raise TemplateNotFoundError(f"no template for {type}/{channel}/{part} ({locale})")

    def preview(
        self,
        type: str,
        channel: str = "in_app",
        locale: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> dict[str, str]:
        """Render every part of ``channel`` with the type's example (or ``data``).

        Raises:
            UnknownEventTypeError, ValidationError, PayloadValidationError, TemplateError.
        """
        notification_type = self.catalog.get(type)
        renderer = self._renderer()
        instance = self._channels().get(channel)
        if instance is None:
            known = ", ".join(self._channels().registry)
            raise ValidationError(f"unknown channel {channel!r}; known: {known}")
        locale = validate_locale(locale) if locale else renderer.default_locale
        context = sample_context(notification_type, instance, locale, data)
        return renderer.render(
            type, channel, instance.parts, locale, context, optional=instance.optional_parts
        )

    def validate(self) -> builtins.list[TemplateProblem]:
        """Check every template file, every active override and that no part is missing."""
        renderer = self._renderer()
        return self.checker.validate(renderer.sync().by_name)

    def _changed(self) -> None:
        renderer = self._renderer()
        if renderer.overrides is not None:
            renderer.overrides.invalidate()


def _key(type: str, channel: str, locale: str, part: str) -> list[Any]:
    _check_filters(type=type, channel=channel, locale=locale, part=part)
    t = TemplateVersion
    return [t.type == type, t.channel == channel, t.locale == locale, t.part == part]


def _check_filters(**values: str | None) -> None:
    """Refuse, as a ValidationError, a filter value no store could hold (else PostgreSQL
    raises a DataError for a NUL); unknown but storable values simply match nothing."""
    for field, value in values.items():
        if value is not None:
            if not isinstance(value, str):
                raise ValidationError(f"{field} must be a string, not {type(value).__name__}")
            check_storable(value, field)
