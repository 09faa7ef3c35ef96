"""The catalog of notification types."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from dispatcher import (
    ConfigurationError,
    NotificationType,
    Priority,
    ValidationError,
)
from dispatcher.catalog import Catalog
from dispatcher.seed_types import default_catalog


class _P(BaseModel):
    n: int


def test_catalog_refuses_duplicates_bad_names_and_bad_examples() -> None:
    c = Catalog()
    t = NotificationType(name="thing", payload=_P, example={"n": 1})
    c.register(t)
    with pytest.raises(ConfigurationError, match="already registered"):
        c.register(t)
    c.register(t, replace=True)
    with pytest.raises(ConfigurationError, match="must be a Python identifier"):
        c.register(NotificationType(name="bad-name", payload=_P, example={"n": 1}))
    with pytest.raises(ValidationError, match="invalid payload for 'broken'"):
        c.register(NotificationType(name="broken", payload=_P, example={"n": "x"}))
    assert c.names() == ["thing"] and len(c) == 1 and "thing" in c


def test_seed_catalog() -> None:
    c = default_catalog()
    assert c.names() == sorted(
        [
            "ticket_created",
            "ticket_updated",
            "ticket_cancelled",
            "report_generated",
            "system_alert",
            "user_activity",
        ]
    )
    alert = c.get("system_alert")
    assert alert.critical and alert.priority is Priority.URGENT
    assert alert.is_forced("in_app") and not alert.is_forced("web_push")
    assert not c.get("ticket_created").is_forced("in_app")
