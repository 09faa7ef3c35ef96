"""``GET /metrics``: Prometheus metrics, for internal networks only.

One scrape answers the database figures (:meth:`Dispatcher.metrics_collector`, read
from the tables and the broker at scrape time, so prefork workers keep no state) and
this gateway process's own: open WebSocket connections and messages in and out.

Only clients in ``DISPATCHER_METRICS_ALLOW`` (CIDR networks, loopback by default) get
an answer; anyone else gets 404, as if there were nothing here. Behind a reverse proxy
every client looks like the proxy: do not route ``/metrics`` through it, or widen the
list only to the monitoring network.
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest
from starlette.concurrency import run_in_threadpool

from dispatcher.gateway.state import Gateway

#: This process's own meters (not the library's global registry).
REGISTRY = CollectorRegistry(auto_describe=False)
CONNECTIONS = Gauge(
    "dispatcher_gateway_connections",
    "Open WebSocket connections on this gateway process.",
    registry=REGISTRY,
)
MESSAGES = Counter(
    "dispatcher_gateway_messages",
    "WebSocket messages on this gateway process, by direction (in, out) and type.",
    ["direction", "type"],
    registry=REGISTRY,
)

router = APIRouter(include_in_schema=False)


def allowed(host: str | None, networks: list[str]) -> bool:
    """True when ``host`` (a client address) is inside one of ``networks``."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    client = request.client.host if request.client else None
    if not allowed(client, gw.dispatcher.settings.metrics_allow):
        raise HTTPException(404, "not found")
    registry = gw.metrics_registry
    if registry is None:
        registry = gw.metrics_registry = CollectorRegistry(auto_describe=False)
        registry.register(gw.dispatcher.metrics_collector())
    database = await run_in_threadpool(generate_latest, registry)
    return Response(database + generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
