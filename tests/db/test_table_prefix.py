"""``DISPATCHER_TABLE_PREFIX``: our tables, indexes, constraints and Alembic version
table carry the prefix, beside unprefixed ones in the same database.

The prefix is per process (the tables are module-level objects), so each backend runs
in a subprocess; its database already holds the suite's unprefixed tables.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, inspect

from dispatcher.db.models import Base, use_table_prefix
from dispatcher.errors import ConfigurationError
from tests.conftest import QUIET_BROKER_URL, ROOT

SCRIPT = """
import json, sys
from sqlalchemy import func, select
from dispatcher import Dispatcher, Settings
from dispatcher.db.models import Delivery, Event
from dispatcher.worker import Runtime

d = Dispatcher(Settings.from_env(database_url=sys.argv[1], broker_url=sys.argv[2],
                                 table_prefix="dispatcher_", inline_delivery_limit=20))
d.migrate()
d.migrate()  # again: the prefixed version table says it is done
d.subscribers.upsert("ana", email="ana@example.com")
receipt = d.notify("payout_sent", to="ana", data={"payout_id": 7, "amount": "3.50"})
Runtime(d).fanout(receipt.id)
with d.store.session() as s:
    counts = [s.scalar(select(func.count()).select_from(m)) for m in (Event, Delivery)]
print(json.dumps({"inbox": [i.title for i in d.inbox("ana")], "counts": counts}))
"""


def test_a_prefixed_dispatcher_lives_beside_an_unprefixed_one(
    backend: str, database_url: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, database_url, QUIET_BROKER_URL],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
             "DISPATCHER_TYPES_MODULES": '["tests.app_types"]',
             "DISPATCHER_EXTRA_TEMPLATES_DIRS": json.dumps([str(ROOT / "tests" / "templates")])},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"inbox": ["Payout 7 sent"], "counts": [1, 1]}
    engine = create_engine(database_url)
    try:
        names = set(inspect(engine).get_table_names())
        ours = {t.name for t in Base.metadata.sorted_tables}
        assert {"dispatcher_" + n for n in ours} | ours | {"alembic_version"} <= names
        assert "dispatcher_alembic_version" in names
        indexes = {i["name"] for i in inspect(engine).get_indexes("dispatcher_events")}
        assert "dispatcher_ix_events_status_send_at" in indexes
    finally:
        engine.dispose()


def test_one_prefix_per_process() -> None:
    use_table_prefix("")  # what this process's stores already use
    with pytest.raises(ConfigurationError, match="DISPATCHER_TABLE_PREFIX"):
        use_table_prefix("other_")


@pytest.mark.parametrize("bad", ["Dispatcher_", "1x_", "x-y", "x y", "a" * 40])
def test_a_bad_prefix_names_the_variable(bad: str) -> None:
    from dispatcher import Settings

    with pytest.raises(ConfigurationError, match="DISPATCHER_TABLE_PREFIX"):
        Settings.from_env(table_prefix=bad)
