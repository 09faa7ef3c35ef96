"""Migration 0009 (segments, campaign templates, ``campaigns.content``) upgrades and
downgrades on a fresh SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect

from dispatcher import Dispatcher
from dispatcher.db.migrate import downgrade, revisions, upgrade
from tests.conftest import PG_ADMIN_URL, make_settings

NEW_TABLES = {"segments", "campaign_templates"}


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"dispatcher_mig_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def shape(d: Dispatcher) -> tuple[set[str], set[str]]:
    inspector = inspect(d.store.engine)
    tables = set(inspector.get_table_names())
    return tables, {c["name"] for c in inspector.get_columns("campaigns")}


def test_upgrade_downgrade_upgrade(fresh_url: str) -> None:
    d = Dispatcher(make_settings(fresh_url))
    try:
        upgrade(d.store, "0008")
        tables, columns = shape(d)
        assert not NEW_TABLES & tables and "content" not in columns
        upgrade(d.store, "0009")
        assert revisions(d.store)[0] == "0009"
        tables, columns = shape(d)
        assert tables >= NEW_TABLES and "content" in columns
        d.campaigns.segments.create("north", {"region": "north"})
        made = d.campaigns.create(
            "c",
            type="payout_sent",
            data={"payout_id": 1, "amount": "1"},
            audience={"segment": "north"},
            templates={"in_app": {"en": {"title": "t", "body": "b"}}},
        )
        assert d.campaigns.get(made.id).templates == {"in_app": {"en": {"title": "t", "body": "b"}}}
        downgrade(d.store, "0008")
        tables, columns = shape(d)
        assert not NEW_TABLES & tables and "content" not in columns
        assert revisions(d.store)[0] == "0008"
        upgrade(d.store)
        tables, columns = shape(d)
        assert tables >= NEW_TABLES and "content" in columns
    finally:
        d.close()
