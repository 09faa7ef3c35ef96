"""Declaring a digest: bad settings are refused, precisely, when the type is registered."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from dispatcher import ConfigurationError
from dispatcher.catalog import Catalog
from dispatcher.seed_types import SEED_TYPES

SEED = next(t for t in SEED_TYPES if t.name == "ticket_updated")
TYPE = replace(SEED, channels=("in_app", "email"))


@pytest.mark.parametrize(
    ("digest", "message"),
    [
        (
            {"sms": timedelta(minutes=5)},
            "type 'ticket_updated': digest['sms']: not one of the type's channels "
            "['in_app', 'email']",
        ),
        (
            {"in_app": timedelta(minutes=5)},
            "type 'ticket_updated': digest['in_app']: in_app cannot be digested "
            "(its inbox is a list)",
        ),
        (
            {"email": 900},
            "type 'ticket_updated': digest['email']: the window must be a timedelta, not int",
        ),
        (
            {"email": timedelta(0)},
            "type 'ticket_updated': digest['email']: the window must be from 1 second to "
            "7 days, not 0:00:00",
        ),
        (
            {"email": timedelta(minutes=-5)},
            "type 'ticket_updated': digest['email']: the window must be from 1 second to "
            "7 days, not -1 day, 23:55:00",
        ),
        (
            {"email": timedelta(days=8)},
            "type 'ticket_updated': digest['email']: the window must be from 1 second to "
            "7 days, not 8 days, 0:00:00",
        ),
        (
            [("email", timedelta(minutes=5))],
            "type 'ticket_updated': digest must map channel names to windows (timedelta), not list",
        ),
    ],
)
def test_a_bad_digest_is_refused_at_registration(digest: Any, message: str) -> None:
    catalog = Catalog()
    with pytest.raises(ConfigurationError) as info:
        catalog.register(replace(TYPE, digest=digest))
    assert str(info.value) == message
    assert "ticket_updated" not in catalog


def test_a_good_digest_is_kept() -> None:
    catalog = Catalog()
    catalog.register(replace(TYPE, digest={"email": timedelta(minutes=15)}))
    assert catalog.get("ticket_updated").digest == {"email": timedelta(minutes=15)}
