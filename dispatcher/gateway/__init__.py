"""The in-app gateway: REST inbox and real-time WebSocket for subscribers' browsers.

``create_app()`` builds the ASGI app; ``dispatcher gateway`` runs it under uvicorn and
``uvicorn dispatcher.gateway.asgi:app`` serves it from the environment.

Modules: ``app`` (factory, health, demo page), ``auth`` (JWT), ``rest`` (``/api/``
routes), ``schemas`` (their JSON shapes), ``websocket`` (the socket protocol),
``client_messages`` (what a client may send on it), ``hub`` (one Redis pub/sub
subscription per process), ``limits`` (body size, request rate, sockets per
subscriber), ``handshake`` (deadline and size of request heads, as uvicorn protocols),
``headers`` (security headers and CSP), ``redaction`` (tokens out of logs), ``state``
(what a process shares).

Adding an area's endpoints (push subscriptions, unsubscribe): write a module with an
``APIRouter(prefix="/api", responses=rest.COMMON_RESPONSES)`` whose routes take
``caller: rest.Caller`` (authenticated, rate-limited subscriber) and ``gw: rest.Gw``
(the :class:`~dispatcher.gateway.state.Gateway`, with ``gw.dispatcher``), and include
it in :func:`~dispatcher.gateway.app.create_app` with ``app.include_router(...)``.
Public pages that do not take a JWT (one-click unsubscribe) use a router without
``Caller``; the body-size limit applies to every route.
"""

from dispatcher.extras import needs

with needs("gateway", "the gateway"):
    from dispatcher.gateway.app import create_app

__all__ = ["create_app"]
