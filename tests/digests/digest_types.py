"""``ticket_updated`` as an app that digests it by email declares it: in-app for every
update, email at most once per window (``DIGEST_TEST_WINDOW_SECONDS``, 15 minutes
unless set: workers of the real-time tests get a few seconds)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta

from dispatcher.catalog import Catalog
from dispatcher.seed_types import SEED_TYPES

WINDOW = timedelta(seconds=int(os.environ.get("DIGEST_TEST_WINDOW_SECONDS", "900")))


def register_types(catalog: Catalog, window: timedelta = WINDOW) -> None:
    seed = next(t for t in SEED_TYPES if t.name == "ticket_updated")
    digested = replace(seed, channels=("in_app", "email"), digest={"email": window})
    catalog.register(digested, replace=True)
