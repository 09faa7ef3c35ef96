"""Migration 0010 (digest windows and items) upgrades and downgrades on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import inspect

from dispatcher.db.engine import Store
from dispatcher.db.migrate import downgrade, upgrade
from tests.conftest import PG_ADMIN_URL, RUN_ID


@pytest.fixture(params=["sqlite", "postgres"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        store = Store(f"sqlite:///{tmp_path / 'migrations.db'}")
        yield store
        store.dispose()
        return
    name = f"dispatcher_digest_migration_{RUN_ID}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    store = Store(f"{base}/{name}")
    yield store
    store.dispose()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tables(store: Store) -> set[str]:
    return set(inspect(store.engine).get_table_names())


def test_0010_up_down_up(empty_store: Store) -> None:
    upgrade(empty_store, "0009")
    assert not {"digest_windows", "digest_items"} & _tables(empty_store)
    upgrade(empty_store)
    assert {"digest_windows", "digest_items"} <= _tables(empty_store)
    indexes = {i["name"]: i for i in inspect(empty_store.engine).get_indexes("digest_windows")}
    assert indexes["ix_digest_windows_open"]["unique"]
    downgrade(empty_store, "0009")
    assert not {"digest_windows", "digest_items"} & _tables(empty_store)
    upgrade(empty_store)
    assert {"digest_windows", "digest_items"} <= _tables(empty_store)
