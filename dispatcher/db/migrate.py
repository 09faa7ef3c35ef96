"""Run Alembic migrations from code (``dispatcher migrate``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from dispatcher.db.engine import Store

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(store: Store) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", store.url.render_as_string(hide_password=False))
    return cfg


def upgrade(store: Store, revision: str = "head") -> None:
    """Bring the database up to ``revision`` (the newest by default)."""
    cfg = alembic_config(store)
    with store.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(store: Store, revision: str) -> None:
    cfg = alembic_config(store)
    with store.engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def revisions(store: Store) -> tuple[str | None, str | None]:
    """The database's schema revision (None when it has none) and the newest one this
    version ships; equal when the database is up to date."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(store)).get_current_head()
    with store.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, head
