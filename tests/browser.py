"""Headless Chromium for page tests: ``from tests.browser import *`` gives ``chromium_page``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.test_demo import CHROMIUM, CHROMIUM_ARGS

__all__ = ["chromium_page"]


@pytest.fixture
def chromium_page(tmp_path: Path) -> Iterator[object]:
    """A page in a fresh headless Chromium profile (Debian's chromium; see test_demo)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/services does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield context.new_page()
        finally:
            context.close()
