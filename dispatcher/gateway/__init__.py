"""The in-app gateway: REST inbox and real-time WebSocket for subscribers' browsers.

``create_app()`` builds the ASGI app; ``dispatcher gateway`` runs it under uvicorn.
"""

from dispatcher.gateway.app import create_app

__all__ = ["create_app"]
