"""Names shared between processes: queues by priority."""

from __future__ import annotations

import pytest

from dispatcher.names import BULK, for_priority


@pytest.mark.parametrize(
    ("priority", "bulk", "queue"),
    [
        ("low", False, "dispatcher.low"),
        ("urgent", False, "dispatcher.urgent"),
        ("medium", True, BULK),
        ("urgent", True, "dispatcher.urgent"),
    ],
)
def test_queues(priority: str, bulk: bool, queue: str) -> None:
    assert for_priority(priority, bulk=bulk) == queue
