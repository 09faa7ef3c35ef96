"""Stats add up: events through a real worker, with known opt-outs, quiet hours, one
recipient the SMTP server refuses and some clicks on tracked links; the Python API, the
CLI's ``--json``, the Prometheus scrape and the /admin page all show exactly those counts."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import httpx

from dispatcher import Dispatcher
from dispatcher.clock import utcnow
from tests.browser import *  # noqa: F403  (chromium_page)
from tests.cli.test_stats import run_stats
from tests.conftest import StartWorker, wait_for
from tests.gateway.test_admin import admin_token
from tests.gateway.test_metrics import scrape, value
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import GatewayServer
from tests.smtp_server import (  # noqa: F401 - fixtures
    Received,
    SmtpServer,
    smtp_server_fixture,
    smtp_server_session,
)

EVENTS = 2
PEOPLE = [f"adds-{i}" for i in range(6)]
#: s1 turned ticket emails off, s2 in-app; s3 is in quiet hours; s4's server refuses.
OPTED_OUT_EMAIL, OPTED_OUT_IN_APP, QUIET, REFUSED = PEOPLE[1], PEOPLE[2], PEOPLE[3], PEOPLE[4]
#: Per event: (channel) → counts. Web push has no VAPID key here.
PER_EVENT = {
    "email": {
        "dispatched": 6,
        "sent": 3,
        "skipped": {"opted_out": 1},
        "failed": {"rejected": 1},
        "deferred": 1,
        "in_flight": 1,
    },
    "in_app": {
        "dispatched": 6,
        "sent": 5,
        "skipped": {"opted_out": 1},
        "failed": {},
        "deferred": 0,
        "in_flight": 0,
    },
}
#: Follows of the tracked ticket link: PEOPLE[0]'s first email twice, PEOPLE[5]'s once.
CLICKS, CLICKED = 3, 2


def expected(channel: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, v in PER_EVENT[channel].items():
        out[name] = {k: n * EVENTS for k, n in v.items()} if isinstance(v, dict) else v * EVENTS
    return out


def tracked_link(message: Received, gateway: GatewayServer) -> str:
    body = message.parse().get_body(("plain",))
    assert body is not None
    text = body.get_content()
    found = re.findall(re.escape(gateway.url) + r"/c/[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", text)
    assert found, "no tracked link in the email"
    return str(found[0])


def test_stats_add_up_everywhere(
    dispatcher: Dispatcher,
    gateway: GatewayServer,
    start_worker: StartWorker,
    smtp_server: SmtpServer,
    chromium_page: object,
) -> None:
    from playwright.sync_api import Page, expect

    d = dispatcher
    start_worker(
        smtp_server.env(
            DISPATCHER_CLICK_TRACKING="true",
            DISPATCHER_PUBLIC_URL=gateway.url,
            DISPATCHER_SMTP_MAX_ATTEMPTS="2",
        )
    )
    for person in PEOPLE:
        d.subscribers.upsert(person, email=f"{person}@example.com")
    d.preferences.set(OPTED_OUT_EMAIL, type="ticket_created", channel="email", enabled=False)
    d.preferences.set(OPTED_OUT_IN_APP, type="ticket_created", channel="in_app", enabled=False)
    now = utcnow()
    start, end = (now - timedelta(hours=1)), (now + timedelta(hours=2))
    d.quiet_hours.set(QUIET, [(start.strftime("%H:%M"), end.strftime("%H:%M"))])
    smtp_server.fail(f"{REFUSED}@example.com", "550 5.1.1 no such user")
    data = dict(d.catalog.get("ticket_created").example)
    for n in range(EVENTS):
        d.notify("ticket_created", to=PEOPLE, data={**data, "ticket_id": 100 + n})

    deliveries = 3 * len(PEOPLE) * EVENTS
    wait_for(lambda: d.deliveries.unsettled() == EVENTS and _count(d) == deliveries, timeout=60)
    first = smtp_server.to(f"{PEOPLE[0]}@example.com")[0]
    last = smtp_server.to(f"{PEOPLE[5]}@example.com")[0]
    for link in (tracked_link(first, gateway),) * 2 + (tracked_link(last, gateway),):
        answer = httpx.get(link)
        assert answer.status_code == 302
        assert answer.headers["location"].startswith(gateway.url + "/tickets/10")

    # The Python API.
    report = d.analytics.report(since="1d")
    rows = {r.channel: r.to_dict() for r in report.rows}
    for channel in PER_EVENT:
        for name, value_ in expected(channel).items():
            assert rows[channel][name] == value_, (channel, name)
    assert (rows["email"]["clicks"], rows["email"]["clicked"]) == (CLICKS, CLICKED)
    push = rows["web_push"]
    assert push["dispatched"] == len(PEOPLE) * EVENTS == sum(push["skipped"].values())
    assert rows["email"]["latency_p50"] is not None and rows["email"]["latency_p50"] >= 0

    # The CLI.
    result = run_stats(d, "--since", "1d", "--json")
    assert result.returncode == 0, result.stderr
    cli = {r["channel"]: r for r in json.loads(result.stdout)["engagement"]["rows"]}
    assert cli == json.loads(json.dumps(rows))

    # The metrics.
    m = scrape(gateway)["dispatcher_deliveries"]
    assert value(m, channel="email", status="sent") == 3 * EVENTS
    assert value(m, channel="email", status="skipped", reason="opted_out") == EVENTS
    assert value(m, channel="email", status="failed", reason="rejected") == EVENTS
    assert value(m, channel="email", status="scheduled", reason="quiet_hours") == EVENTS
    assert value(m, channel="in_app", status="sent") == 5 * EVENTS
    assert value(m, channel="in_app", status="skipped", reason="opted_out") == EVENTS
    assert value(m, channel="web_push", status="skipped") == len(PEOPLE) * EVENTS

    # The page.
    page: Page = chromium_page  # type: ignore[assignment]
    page.goto(f"{gateway.url}/admin")
    page.fill("#token", admin_token())
    page.click("button[type=submit]")
    expect(page.locator("#status")).to_have_text("ready")
    totals = report.totals()
    for name in ("dispatched", "sent", "skipped", "failed", "deferred", "in_flight", "clicks"):
        expect(page.locator(f"#total-{name}")).to_have_text(str(totals[name]))
    email = page.locator('.funnel-row[data-key="ticket_created / email"]')
    expect(email).to_have_attribute("data-dispatched", str(6 * EVENTS))
    for status, count in {"sent": 3, "skipped": 1, "failed": 1, "in_flight": 1}.items():
        expect(email.locator(f'rect[data-status="{status}"]')).to_have_attribute(
            "data-count", str(count * EVENTS)
        )
    clicked = page.locator('.rate-row[data-key="ticket_created / email"][data-what="clicked"]')
    expect(clicked).to_have_attribute("data-count", str(CLICKED))


def _count(d: Dispatcher) -> int:
    return sum(sum(row.values()) for row in d.deliveries.stats().by_channel.values())
