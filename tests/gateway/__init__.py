"""Tests of the gateway: a real uvicorn server, REST and WebSocket clients."""
