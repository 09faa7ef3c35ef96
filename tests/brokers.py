"""The broker the worker-level tests run on: Redis, or RabbitMQ with
``DISPATCHER_TEST_BROKER=rabbitmq`` (``scripts/test`` runs those tests a second time so).

On RabbitMQ each test process gets vhosts of its own, one per database backend (as it
gets Redis databases of its own), made with ``rabbitmqctl`` on first use and deleted when
its test session ends. Redis still carries the latch, liveness keys and pub/sub.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from urllib.parse import quote

#: "redis" (the default) or "rabbitmq".
TEST_BROKER = os.environ.get("DISPATCHER_TEST_BROKER", "redis")
if TEST_BROKER not in ("redis", "rabbitmq"):
    raise SystemExit(f"DISPATCHER_TEST_BROKER must be redis or rabbitmq, not {TEST_BROKER!r}")
AMQP_BASE = os.environ.get("DISPATCHER_TEST_AMQP_BASE", "amqp://guest:guest@127.0.0.1:5672")
_made: dict[str, str] = {}


def _rabbitmqctl(*args: str) -> None:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        raise RuntimeError("DISPATCHER_TEST_BROKER=rabbitmq needs rabbitmqctl on PATH")
    subprocess.run([tool, "-q", *args], check=True, capture_output=True, timeout=60)


def amqp_vhost_url(name: str) -> str:
    """``amqp://…/<name>``, the vhost made (with guest's permissions) on first use."""
    if name not in _made:
        _rabbitmqctl("add_vhost", name)
        _made[name] = name
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return f"{AMQP_BASE}/{quote(name, safe='')}"


def delete_vhosts() -> None:
    """Delete the vhosts this process made (at the end of its test session)."""
    for name in list(_made):
        # A vhost left behind is named after its run; nothing reads it again.
        with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
            _rabbitmqctl("delete_vhost", name)
        _made.pop(name, None)
