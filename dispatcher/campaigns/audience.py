"""Audiences in the database: who matches, recorded per run with ``INSERT … SELECT``.

A filter on attributes is evaluated by the database, never row by row in Python: JSON
containment (``attributes::jsonb @> '{"role": "seller"}'``) on PostgreSQL,
``json_extract(attributes, '$.role') = 'seller'`` on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    cast,
    func,
    insert,
    literal,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from dispatcher.campaigns.definition import Audience
from dispatcher.db.models import CampaignAudience, Subscriber, table

#: Ids per statement when an audience names them.
ID_CHUNK = 5000

_S = table(Subscriber)
_A = table(CampaignAudience)


def _filter(audience: Audience, postgres: bool) -> ColumnElement[bool]:
    """The ``WHERE`` of ``audience``'s attribute filter (true when it has none)."""
    if audience.filter is None:
        return true()
    if postgres:
        return cast(_S.c.attributes, JSONB).contains(dict(audience.filter))
    tests = []
    for name, wanted in audience.filter.items():
        value = func.json_extract(_S.c.attributes, literal(f"$.{name}"))
        # json_extract gives SQLite's own 1/0 for JSON true/false.
        tests.append(value == (int(wanted) if isinstance(wanted, bool) else wanted))
    return and_(*tests)


def _selects(audience: Audience, postgres: bool, columns: list[Any]) -> Iterator[Select[Any]]:
    """``SELECT columns FROM subscribers`` for the audience: one statement, or one per
    :data:`ID_CHUNK` listed ids."""
    base = select(*columns).where(_filter(audience, postgres))
    if audience.exclude:
        base = base.where(_S.c.external_id.not_in(list(audience.exclude)))
    if audience.ids is None:
        yield base
        return
    for start in range(0, len(audience.ids), ID_CHUNK):
        yield base.where(_S.c.external_id.in_(list(audience.ids[start : start + ID_CHUNK])))


def record(conn: Connection, run_id: int, audience: Audience, postgres: bool) -> int:
    """Insert the run's audience (``INSERT … SELECT``); returns how many it holds."""
    total = 0
    for statement in _selects(audience, postgres, [literal(run_id), _S.c.id]):
        # SQLAlchemy keeps an INSERT's rowcount only when asked to.
        result = conn.execute(
            insert(_A).from_select(["run_id", "subscriber_id"], statement),
            execution_options={"preserve_rowcount": True},
        )
        total += max(result.rowcount or 0, 0)
    return total


def count(conn: Connection, audience: Audience, postgres: bool) -> int:
    """How many subscribers match now (nothing written)."""
    return sum(
        conn.execute(select(func.count()).select_from(s.subquery())).scalar_one()
        for s in _selects(audience, postgres, [_S.c.id])
    )


def members(conn: Connection, audience: Audience, postgres: bool, columns: list[Any]) -> list[Any]:
    """The matching subscribers' ``columns`` (for a dry run; nothing written)."""
    rows: list[Any] = []
    for statement in _selects(audience, postgres, columns):
        rows.extend(conn.execute(statement.order_by(_S.c.id)).all())
    return rows
