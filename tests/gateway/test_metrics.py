"""``/metrics`` on a real gateway: parsed with prometheus_client's parser; loopback only."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dispatcher import Dispatcher
from dispatcher.clock import utcnow
from tests.analytics_dataset import seed
from tests.gateway_server import *  # noqa: F403
from tests.gateway_server import GatewayServer, StartGateway


def scrape(gateway: GatewayServer) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    answer = httpx.get(gateway.url + "/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(series: dict[tuple[tuple[str, str], ...], float], **labels: str) -> float:
    return sum(v for k, v in series.items() if labels.items() <= dict(k).items())


def test_scrape_has_deliveries_latency_rows_queues_campaigns_and_sockets(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    seed(dispatcher, now=utcnow())
    with gateway.socket("ana") as socket:
        socket.recv_type("unread_count")
        m = scrape(gateway)
    d = m["dispatcher_deliveries"]
    assert value(d, channel="email", status="sent") == 5
    assert value(d, channel="email", status="skipped", reason="opted_out") == 2
    assert value(d, channel="email", status="failed", reason="rejected") == 1
    assert value(d, channel="web_push", status="failed", reason="retries_exhausted") == 1
    assert value(d, type="ticket_created") == 13
    rows = m["dispatcher_delivery_rows"]
    assert (value(rows, status="scheduled"), value(rows, status="pending")) == (1, 0)
    # Sent in the last 24 hours: today's 5 emails and 4 in-app; yesterday's pushes are older.
    count = m["dispatcher_delivery_latency_seconds_count"]
    assert (value(count, channel="email"), value(count, channel="in_app")) == (5, 4)
    buckets = m["dispatcher_delivery_latency_seconds_bucket"]
    assert value(buckets, channel="email", le="2.5") == 2  # 1 s and 2 s
    assert value(buckets, channel="email", le="+Inf") == 5
    # SQLite: julianday() differences carry ~10 µs of float error per value.
    assert abs(m["dispatcher_delivery_latency_seconds_sum"][(("channel", "email"),)] - 20) < 1e-3
    campaign = m["dispatcher_campaign_deliveries"]
    assert value(campaign, campaign="Winter sale", status="sent") == 2
    assert set(dict(k)["queue"] for k in m["dispatcher_queue_depth"]) >= {"dispatcher.urgent"}
    assert value(m["dispatcher_gateway_connections"]) >= 1
    assert value(m["dispatcher_gateway_messages_total"], direction="out") >= 1


def test_metrics_are_refused_outside_the_allowed_networks(
    dispatcher: Dispatcher, start_gateway: StartGateway
) -> None:
    closed = start_gateway({"DISPATCHER_METRICS_ALLOW": '["10.99.0.0/16"]'})
    assert httpx.get(closed.url + "/metrics").status_code == 404
