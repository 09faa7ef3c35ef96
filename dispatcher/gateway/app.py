"""The gateway's ASGI app: REST inbox, real-time socket, health checks and a demo page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware

from dispatcher import log, names
from dispatcher.dispatcher import Dispatcher
from dispatcher.errors import ValidationError
from dispatcher.gateway import admin, redaction
from dispatcher.gateway.auth import TokenVerifier
from dispatcher.gateway.campaigns import router as campaigns_router
from dispatcher.gateway.clicks import router as clicks_router
from dispatcher.gateway.headers import SecurityHeaders
from dispatcher.gateway.hub import Hub
from dispatcher.gateway.limits import BodySizeLimit, ConnectionSlots, RequestRate
from dispatcher.gateway.metrics import router as metrics_router
from dispatcher.gateway.push import router as push_router
from dispatcher.gateway.quiet_hours import router as quiet_hours_router
from dispatcher.gateway.rest import router
from dispatcher.gateway.schemas import Health
from dispatcher.gateway.segments import router as segments_router
from dispatcher.gateway.state import Gateway
from dispatcher.gateway.unsubscribe import router as unsubscribe_router
from dispatcher.gateway.websocket import ROUTES
from dispatcher.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(
    settings: Settings | None = None, *, dispatcher: Dispatcher | None = None
) -> FastAPI:
    """Build the gateway app.

    Parameters:
        settings: Read from ``DISPATCHER_*`` when omitted.
        dispatcher: Share an existing dispatcher (and its catalog) instead of making one.

    Raises:
        ConfigurationError: the JWT key for the pinned algorithm is missing.
    """
    redaction.install()
    owned = dispatcher is None
    if dispatcher is None:
        settings = settings or Settings.from_env()
        verifier = TokenVerifier(settings.gateway)  # fail on a missing key before connecting
        d = Dispatcher(settings)
    else:
        d = dispatcher
        verifier = TokenVerifier(d.settings.gateway)
    gs = d.settings.gateway

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A blocking pool: a burst of sockets waits for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            d.settings.redis_url,
            max_connections=gs.redis_pool_size,
            timeout=10,
            # Operators find the gateway's connections in CLIENT LIST by this name.
            client_name=names.gateway_client(d.settings.redis_prefix),
        )
        client = aioredis.Redis(connection_pool=pool)
        prefix = d.settings.redis_prefix
        hub = Hub(client, prefix)
        app.state.gateway = Gateway(
            dispatcher=d,
            verifier=verifier,
            redis=client,
            hub=hub,
            rate=RequestRate(client, prefix, gs.requests_per_minute),
            slots=ConnectionSlots(
                client, prefix, gs.max_connections_per_subscriber, 3 * gs.heartbeat_seconds + 5
            ),
        )
        await hub.start()
        log.info("gateway.started")
        try:
            yield
        finally:
            await hub.stop()
            await client.aclose()
            await pool.aclose()
            if owned:
                d.close()

    app = FastAPI(
        title="dispatcher gateway",
        version="1",
        description="The in-app inbox of one subscriber (the token's `sub`), over REST and "
        "a WebSocket at `/ws/notifications/{jwt}/`.",
        lifespan=lifespan,
    )
    # The last one added runs first: headers wrap every answer, CORS answers preflights
    # before the body limit reads anything.
    app.add_middleware(BodySizeLimit, max_bytes=gs.max_body_bytes)
    if gs.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=gs.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After"],
            # Bearer tokens, not cookies: a credentialed request is never needed.
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(SecurityHeaders, hsts_seconds=gs.hsts_seconds)
    app.include_router(router)
    app.include_router(push_router)
    app.include_router(unsubscribe_router)
    app.include_router(clicks_router)
    app.include_router(metrics_router)
    app.include_router(admin.api)
    app.include_router(admin.pages)
    app.include_router(campaigns_router)
    app.include_router(segments_router)
    app.include_router(quiet_hours_router)
    app.router.routes.extend(ROUTES)

    @app.exception_handler(ValidationError)
    async def invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["health"],
        summary="The database and Redis answer",
        response_model=Health,
        responses={503: {"model": Health, "description": "A dependency is down"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        gw: Gateway = request.app.state.gateway
        checks = {"database": "ok", "redis": "ok", "pubsub": "ok"}

        try:
            await run_in_threadpool(d.store.ping)
        except Exception as exc:  # any driver error means "not ready"
            checks["database"] = type(exc).__name__
        try:
            await gw.redis.ping()
        except (RedisError, OSError) as exc:
            checks["redis"] = type(exc).__name__
        if not gw.hub.healthy:
            checks["pubsub"] = "down"
        ok = all(v == "ok" for v in checks.values())
        body = Health(status="ok" if ok else "unavailable", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get("/demo", include_in_schema=False)
    async def demo() -> FileResponse:
        return FileResponse(STATIC_DIR / "demo.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
