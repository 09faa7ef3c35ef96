"""``dispatcher.gateway.asgi:app`` is importable for other ASGI servers."""

from __future__ import annotations

import importlib
import sys

import pytest
from fastapi import FastAPI

from dispatcher.errors import ConfigurationError


def test_module_level_app_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setenv("DISPATCHER_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("DISPATCHER_GATEWAY_JWT_SECRET", "x" * 32)
    sys.modules.pop("dispatcher.gateway.asgi", None)
    module = importlib.import_module("dispatcher.gateway.asgi")
    assert isinstance(module.app, FastAPI)
    paths = {getattr(r, "path", None) for r in module.app.router.routes}
    assert {"/ws/notifications/{token}/", "/healthz", "/demo"} <= paths
    assert "/api/notifications" in module.app.openapi()["paths"]


def test_missing_secret_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    from dispatcher.gateway import create_app

    monkeypatch.setenv("DISPATCHER_DATABASE_URL", sqlite_url)
    monkeypatch.delenv("DISPATCHER_GATEWAY_JWT_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="DISPATCHER_GATEWAY_JWT_SECRET"):
        create_app()
