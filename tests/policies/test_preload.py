"""On PostgreSQL the preference and quiet-hours data come in the statement that loads the
recipients (``Policy.preload``), on the inline path of fan-out and on the deliver path;
the decisions are the ones the policies' own lookups give."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event

from dispatcher import DeliveryStatus, Dispatcher, Reason
from tests.conftest import close_runtime, make_settings, runtime
from tests.policies.support import add_policy_templates, at, deliveries, reset_redis
from tests.policy_types import channels, register_types

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def inline(inproc: Dispatcher) -> Iterator[Dispatcher]:
    """``inproc``'s database and broker, with fan-out delivering small events inline
    (as a worker does by default)."""
    settings = make_settings(inproc.settings.database_url, inline_delivery_limit=20)
    d = Dispatcher(settings, channels=channels())
    register_types(d.catalog)
    add_policy_templates(d)
    reset_redis(d)
    yield d
    close_runtime(d)
    d.close()


def _statements(d: Dispatcher) -> list[str]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(d.store.engine, "before_cursor_execute", record)
    return seen


def _people(d: Dispatcher) -> None:
    for who in ("quiet", "opted", "plain"):
        d.subscribers.upsert(who, timezone="UTC")
    d.quiet_hours.set("quiet", [("11:00", "13:00", None), ("23:00", "01:00", ["mon"])])
    d.preferences.set("opted", type="policy_ping", channel="recorder", enabled=False)
    d.preferences.set("opted", category="pings", channel="in_app", enabled=True)


def _assert_decided(d: Dispatcher, event_id: int) -> None:
    rows = deliveries(d, event_id)
    held = rows[("quiet", "recorder")]
    assert (held.status, held.reason) == (DeliveryStatus.SCHEDULED, Reason.QUIET_HOURS)
    assert held.scheduled_for == datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    assert rows[("quiet", "in_app")].status is DeliveryStatus.SENT  # silently
    skipped = rows[("opted", "recorder")]
    assert (skipped.status, skipped.reason) == (DeliveryStatus.SKIPPED, Reason.OPTED_OUT)
    assert skipped.detail == "rule: type=policy_ping channel=recorder"
    assert rows[("opted", "in_app")].status is DeliveryStatus.SENT
    assert rows[("plain", "recorder")].status is DeliveryStatus.SENT
    assert rows[("plain", "in_app")].status is DeliveryStatus.SENT


def _policy_lookups(statements: list[str]) -> list[str]:
    return [
        s
        for s in statements
        if s.lstrip().startswith(("SELECT preferences.", "SELECT quiet_hours."))
    ]


def test_inline_fanout_loads_the_policies_data_with_the_recipients(inline: Dispatcher) -> None:
    d = inline
    _people(d)
    deliverer = runtime(d).deliverer
    names = [label.name for label in deliverer.preloads]
    if not d.store.is_postgres:
        assert names == []  # SQLite has no round trips to save: each policy looks it up
        return
    assert names == ["preload_preference", "preload_quiet_hours"]

    with d.store.session() as s:
        rows = s.execute(deliverer.subscriber_rows, {"external_ids": ["quiet", "opted", "plain"]})
        loaded = {r.external_id: (r.preload_preference, r.preload_quiet_hours) for r in rows}
    rules = loaded["opted"][0]
    assert sorted(rules) == [
        ["category", "pings", "in_app", True],
        ["type", "policy_ping", "recorder", False],
    ]  # (in no particular order: the most specific rule wins whatever the order)
    assert loaded == {
        # Windows in the order they were set.
        "quiet": (None, [["11:00:00", "13:00:00", "0123456"], ["23:00:00", "01:00:00", "0"]]),
        "opted": (rules, None),
        "plain": (None, None),
    }

    statements = _statements(d)
    with at(T0):
        receipt = d.notify("policy_ping", to=["quiet", "opted", "plain"], data={"n": 1})
        result = runtime(d).fanout(receipt.id)
    assert result.sent is not None  # delivered inline, in the fan-out's own transaction
    _assert_decided(d, receipt.id)
    assert _policy_lookups(statements) == []


def test_a_deliver_batch_loads_the_policies_data_with_its_rows(inproc: Dispatcher) -> None:
    d = inproc
    _people(d)
    with at(T0):
        receipt = d.notify("policy_ping", to=["quiet", "opted", "plain"], data={"n": 1})
        runtime(d).fanout(receipt.id)
        ids = [row.id for row in deliveries(d, receipt.id).values()]
        statements = _statements(d)
        runtime(d).deliver(ids)
    _assert_decided(d, receipt.id)
    lookups = _policy_lookups(statements)
    # PostgreSQL: with the rows; SQLite: one lookup per policy and channel.
    assert len(lookups) == (0 if d.store.is_postgres else 4)
