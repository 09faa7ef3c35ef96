"""The /demo page in headless Chromium: live notification, unread badge, click marks read."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher import Dispatcher
from tests.conftest import ROOT, Worker, wait_for
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import GatewayServer, token

#: Debian's chromium here; GitHub's runners point this at their Google Chrome.
CHROMIUM = Path(os.environ.get("DISPATCHER_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture
def backend() -> str:
    # The page exercises the gateway, not the store: one backend is enough.
    return "sqlite"


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[object]:
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


def test_demo_page_shows_live_notifications_and_marks_them_read(
    dispatcher: Dispatcher, worker: Worker, gateway: GatewayServer, browser_page: object
) -> None:
    from playwright.sync_api import Page, expect

    page: Page = browser_page  # type: ignore[assignment]
    dispatcher.subscribers.upsert("ana")
    dispatcher.notify("payout_sent", to="ana", data={"payout_id": 1, "amount": "5.00"})
    wait_for(lambda: dispatcher.inbox("ana"))

    page.goto(f"{gateway.url}/demo?token={token('ana', ttl=600)}")
    expect(page.locator("#status")).to_have_text("live")
    expect(page.locator("#badge")).to_have_text("1")
    expect(page.locator("#items li")).to_have_count(1)

    # Dispatched through the worker while the page is open: it appears live.
    dispatcher.notify("payout_sent", to="ana", data={"payout_id": 2, "amount": "7.25"})
    newest = page.locator("#items li").first
    expect(newest.locator(".title")).to_have_text("Payout 2 sent")
    expect(newest).to_have_class("unread")
    expect(page.locator("#badge")).to_have_text("2")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "gateway-demo-unread.png"), full_page=True)

    newest.click()
    expect(page.locator("#badge")).to_have_text("1")
    expect(newest).not_to_have_class("unread")
    nid = int(newest.get_attribute("data-id") or 0)
    assert wait_for(lambda: dispatcher.inboxes.get("ana", nid).read_at)
    assert dispatcher.inboxes.unread_count("ana") == 1
    page.screenshot(path=str(ARTIFACTS / "gateway-demo.png"), full_page=True)
    assert (ARTIFACTS / "gateway-demo.png").stat().st_size > 1000
