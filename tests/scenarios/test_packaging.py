"""The wheel carries every package, the migrations, the gateway's page and the seed
templates (mapped from the top-level templates/ folder), and an installed copy finds them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REDIS_HOST, REDIS_PORT, ROOT

#: Built with the project's own setuptools (a dev dependency), so no download is needed.
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info")
PIP_WHEEL = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of what the build reads, so the in-tree build/ folder is not left behind.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("dispatcher", "templates"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("dispatcher-*.whl")
    return built


def test_every_package_of_the_source_tree_is_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.relative_to(ROOT)) for p in (ROOT / "dispatcher").rglob("__init__.py")}
    assert packages - names == set()
    assert "dispatcher/db/migrations/env.py" in names
    assert "dispatcher/gateway/static/demo.js" in names


def test_the_seed_templates_are_in_the_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {
        "dispatcher/seed_templates/" + str(p.relative_to(ROOT / "templates"))
        for p in (ROOT / "templates").rglob("*")
        if p.is_file()
    }
    assert len(sources) > 90
    assert sources - names == set()


def test_an_installed_copy_renders_from_its_own_templates(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path)
    script = (
        "from dispatcher.settings import DEFAULT_TEMPLATES_DIR as d; "
        "print(d); print(len(list(d.rglob('*.j2'))))"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path)!r}); {script}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out[0] == str(tmp_path / "dispatcher" / "seed_templates")
    assert int(out[1]) == len(list((ROOT / "templates").rglob("*.j2")))


#: What a fresh ``pip install dispatcher`` (no extras) runs: migrate, notify, ring.
NOTIFY_SCRIPT = """
import json, sys
import redis
from dispatcher import Dispatcher, Settings
database, broker = sys.argv[1], sys.argv[2]
redis.Redis.from_url(broker).flushdb()
d = Dispatcher(Settings.from_env(database_url=database, broker_url=broker, redis_url=broker))
d.migrate()
d.subscribers.upsert("u1", email="u1@example.com")
receipt = d.notify("ticket_created", to="u1", data={"ticket_id": 1, "event_name": "Final",
    "seller": "Luis", "amount": "45.00", "currency": "EUR"})
rung = redis.Redis.from_url(broker).llen("dispatcher.high")
# A worker's step, in this process: in-app is delivered, web push (no extra) is skipped.
from dispatcher.worker import Runtime
Runtime(d).fanout(receipt.id)
inbox = [item.type for item in d.inbox("u1")]
trail = [line for line in d.explain(receipt.id).lines() if "web_push" in line]
missing = []
for module in ("fastapi", "uvicorn", "flower", "psycopg", "pywebpush", "aiohttp", "django",
               "pytest", "httpx"):
    try:
        __import__(module)
    except ImportError:
        missing.append(module)
print(json.dumps({"event": receipt.id, "rung": rung, "missing": missing, "inbox": inbox,
                  "trail": trail}))
"""


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def test_a_plain_install_notifies_without_any_extra(wheel: Path, tmp_path: Path) -> None:
    """``pip install dispatcher``: the API, the store and Celery to ring, nothing else."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel],
        check=True,
        capture_output=True,
    )
    broker = f"redis://{REDIS_HOST}:{REDIS_PORT}/14"
    database = f"sqlite:///{tmp_path / 'plain.db'}"
    done = subprocess.run(
        [python, "-I", "-c", NOTIFY_SCRIPT, database, broker],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["event"] >= 1
    assert result["rung"] == 1
    assert result["inbox"] == ["ticket_created"]
    assert result["trail"], "explain shows the web push delivery"
    assert all("channel_not_configured" in line for line in result["trail"]), result["trail"]
    extras = ["fastapi", "uvicorn", "flower", "psycopg", "pywebpush", "aiohttp", "django"]
    assert sorted(result["missing"]) == sorted([*extras, "pytest", "httpx"])
    size = _size_mb(venv)
    print(f"plain install: {size:.0f} MB")
    # 225 MB (242 MB by du) with every extra as a dependency (2026-11-30, same machine);
    # this install: 141 MB (153 MB by du).
    assert size < 160
