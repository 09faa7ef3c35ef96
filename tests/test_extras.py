"""A missing extra is named in the error, and the core works without any extra.

The subprocess hides every extra's modules (``sys.modules[name] = None`` makes an
import of them fail as an uninstalled one would), so this runs in the dev venv.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dispatcher.errors import ConfigurationError, MissingExtraError
from dispatcher.extras import EXTRAS, extra_for, needs
from tests.conftest import ROOT


def test_needs_names_the_extra_of_a_missing_module() -> None:
    with pytest.raises(MissingExtraError) as caught, needs("gateway", "the gateway"):
        raise ModuleNotFoundError("No module named 'fastapi'", name="fastapi")
    assert str(caught.value) == (
        "the gateway needs `pip install dispatcher[gateway]` (fastapi is not installed)"
    )
    assert caught.value.extra == "gateway"
    assert isinstance(caught.value, ConfigurationError)
    assert isinstance(caught.value, ImportError)


def test_needs_leaves_other_import_errors_alone() -> None:
    with pytest.raises(ModuleNotFoundError, match="my_app"), needs("gateway", "the gateway"):
        raise ModuleNotFoundError("No module named 'my_app'", name="my_app")


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("fastapi.routing", "gateway"),
        ("pywebpush", "webpush"),
        ("psycopg", "postgres"),
        ("django.db", "django"),
        ("sqlalchemy", None),
        (None, None),
    ],
)
def test_extra_for(module: str | None, extra: str | None) -> None:
    assert extra_for(module) == extra


HIDE_EXTRAS = (
    "import sys\n"
    f"for name in {sorted(set().union(*EXTRAS.values()))!r}:\n"
    "    sys.modules[name] = None\n"
)

PROBE = """
import json
from dispatcher import Dispatcher, MissingExtraError
from dispatcher.channels.registry import ChannelRegistry
from dispatcher.settings import Settings

results = {}
d = Dispatcher(Settings.from_env(database_url="sqlite:///:memory:"))
results["core"] = "ticket_created" in d.catalog
for name, attempt in {
    "gateway": lambda: __import__("dispatcher.gateway"),
    "web_push": lambda: ChannelRegistry().get("web_push"),
    "postgres": lambda: Dispatcher(Settings.from_env(database_url="postgresql://x@127.0.0.1/x")),
    "push_keys": lambda: d.push_subscriptions.add("u1", {"endpoint": "https://push.example/x",
        "keys": {"p256dh": "B" + "A" * 86, "auth": "A" * 22}}),
}.items():
    try:
        attempt()
        results[name] = "no error"
    except MissingExtraError as exc:
        results[name] = str(exc)
print(json.dumps(results))
"""


def run_without_extras(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE_EXTRAS + code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_extras_the_face_works_and_each_extra_is_named() -> None:
    done = run_without_extras(PROBE)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results["core"], "the catalog should load without extras"
    assert results["gateway"] == (
        "the gateway needs `pip install dispatcher[gateway]` (fastapi is not installed)"
    )
    assert "the web_push channel needs `pip install dispatcher[webpush]`" in results["web_push"]
    assert results["postgres"] == (
        "a PostgreSQL database needs `pip install dispatcher[postgres]` (psycopg is not installed)"
    )
    assert "`pip install dispatcher[webpush]`" in results["push_keys"]


@pytest.mark.parametrize(
    ("command", "extra"),
    [(["gateway"], "gateway"), (["vapid", "generate"], "webpush")],
)
def test_the_cli_names_the_missing_extra(command: list[str], extra: str) -> None:
    done = run_without_extras(
        "from dispatcher.cli import main; main()",
        *command,
    )
    assert done.returncode == 3  # the environment is not ready (cli/group.py)
    assert f"pip install dispatcher[{extra}]" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_gateway_extra_alone_is_enough_for_the_gateway() -> None:
    hidden = sorted(set().union(*EXTRAS.values()) - EXTRAS["gateway"])
    code = (
        f"import sys\nfor name in {hidden!r}:\n    sys.modules[name] = None\n"
        "from dispatcher.gateway import create_app\n"
        "from dispatcher.channels.web_push.vapid import VapidKey\n"
        "print(VapidKey.generate().public_key_b64[:1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "B"
