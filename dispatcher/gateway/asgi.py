"""A module-level app for other ASGI servers: ``uvicorn dispatcher.gateway.asgi:app``.

Configured from ``DISPATCHER_*`` environment variables at import.
"""

from dispatcher.gateway.app import create_app

app = create_app()
