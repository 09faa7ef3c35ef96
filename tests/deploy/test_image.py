"""The image without a Docker engine: the Dockerfile's install steps, repeated in a fresh
venv from constraints.txt, give an installation in which every role of
docker-compose.yml starts against real Redis and PostgreSQL and passes its health check.

The steps are read from the Dockerfile (its ``COPY`` and ``pip`` ``RUN`` instructions), and
the commands from docker-compose.yml, so that neither can drift from what is tested. The
pip cache is reused (the Dockerfile turns it off only inside the image).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.conftest import PG_ADMIN_URL, REDIS_DB, REDIS_HOST, REDIS_PORT, ROOT, wait_for
from tests.gateway_server import free_port

#: A broker database no other test uses: these workers take only their own tasks.
BROKER = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB + 4}"


@dataclass
class Stage:
    """One ``FROM`` of the Dockerfile: its ``COPY`` and ``RUN`` instructions."""

    name: str
    base: str = ""
    copies: list[list[str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


def dockerfile_stages(text: str) -> dict[str, Stage]:
    """The Dockerfile's stages by name, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for line in joined.splitlines():
        words = line.split(None, 1)
        if not words or words[0].startswith("#"):
            continue
        instruction, rest = words[0].upper(), (words[1] if len(words) > 1 else "")
        if instruction == "FROM":
            stage = stages.setdefault(rest.split()[-1], Stage(rest.split()[-1], rest.split()[0]))
        elif stage is not None and instruction == "COPY":
            stage.copies.append(shlex.split(rest))
        elif stage is not None and instruction == "RUN":
            flags = [w for w in rest.split() if w.startswith("--mount=")]
            for flag in flags:
                rest = rest.replace(flag, "", 1)
            stage.runs.append(rest.strip())
    return stages


def test_both_stages_build_on_one_pinned_slim_python() -> None:
    stages = dockerfile_stages((ROOT / "Dockerfile").read_text())
    # Wheels are built for the interpreter that runs them.
    assert stages["wheels"].base == stages["runtime"].base
    assert re.fullmatch(r"python:3\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", stages["runtime"].base)


def _run(command: str, cwd: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image's ``/venv`` and ``/app``, built by the Dockerfile's own steps."""
    root = tmp_path_factory.mktemp("image")
    stages = dockerfile_stages((ROOT / "Dockerfile").read_text())
    assert list(stages) == ["wheels", "runtime"]
    # The base image's python, with the same pip (no cache turned off here).
    shims = root / "bin"
    shims.mkdir()
    (shims / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (shims / "python").chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DISPATCHER_", "PYTHON", "VIRTUAL"))
    }
    env.update(
        PATH=f"{shims}{os.pathsep}{env['PATH']}",
        WHEELS=str(root / "wheels"),
        VENV=str(root / "venv"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    folders = {"wheels": root / "src", "runtime": root / "app"}
    for name, stage in stages.items():
        workdir = folders[name]
        workdir.mkdir()
        for *sources, target in stage.copies:
            assert not any(s.startswith("--") for s in sources), "COPY --from is not repeated"
            for source in sources:
                src = ROOT / source
                dest = workdir / target / source if target.endswith("/") else workdir / target
                if src.is_dir():
                    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, dest)
        pip_steps = [run for run in stage.runs if "pip" in run]
        assert len(pip_steps) == 1, stage.runs
        _run(pip_steps[0], workdir, env)
    return root


def test_the_install_is_pinned_and_has_no_pip(image: Path) -> None:
    venv = image / "venv"
    assert not (venv / "bin" / "pip").exists()
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pins = {
        line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    installed = [line for line in frozen if "==" in line and not line.startswith("dispatcher==")]
    assert len(installed) > 50
    for line in installed:
        name, version = line.split("==")
        assert pins.get(name.lower().replace("_", "-")) == version, f"{line} is not pinned"
    # The seed templates and the migrations come with the wheel, not the source tree.
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-I",
            "-c",
            "import dispatcher, dispatcher.settings as s; "
            "print(dispatcher.__file__); print(len(list(s.DEFAULT_TEMPLATES_DIR.rglob('*.j2'))))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0].startswith(str(venv))
    assert int(out[1]) > 50


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"dispatcher_image_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def compose_command(service: str, **replace: str) -> list[str]:
    """docker-compose.yml's command of ``service``, with words replaced for this machine."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = list(compose["services"][service]["command"])
    return [replace.get(word, word) for word in command]


def test_every_role_starts_and_passes_its_health_check(
    image: Path, database: str, tmp_path: Path
) -> None:
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    venv_bin = image / "venv" / "bin"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DISPATCHER_", "PYTHON", "COV"))
    }
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env['PATH']}",
        DISPATCHER_DATABASE_URL=database,
        DISPATCHER_BROKER_URL=BROKER,
        DISPATCHER_REDIS_URL=BROKER,
        DISPATCHER_REDIS_PREFIX=f"image-{uuid.uuid4().hex[:6]}",
        DISPATCHER_SIGNING_SECRET="image-test",
        DISPATCHER_GATEWAY_JWT_SECRET="image-test-" + uuid.uuid4().hex,
        DISPATCHER_WORKER_QUEUES="urgent,high,maintenance,medium,low",
        DISPATCHER_WORKER_CONCURRENCY="1",
        FLOWER_BASIC_AUTH="ops:image-test",
    )
    app = image / "app"

    def health(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["dispatcher", "health", *args],
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    migrate = subprocess.run(
        compose_command("migrate"), cwd=app, env=env, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stderr
    assert "is up to date" in migrate.stdout
    assert health("migrate").returncode == 0

    schedule = tmp_path / "celerybeat-schedule"
    gateway_port, flower_port = free_port(), free_port()
    commands = {
        "worker": compose_command("worker"),
        "beat": compose_command(
            "beat", **{"/var/lib/dispatcher/celerybeat-schedule": str(schedule)}
        ),
        "flower": compose_command(
            "flower",
            **{"--port=5555": f"--port={flower_port}", "--address=0.0.0.0": "--address=127.0.0.1"},
        ),
        "gateway": compose_command(
            "gateway", **{"0.0.0.0": "127.0.0.1", "8000": str(gateway_port)}
        ),
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs: dict[str, Path] = {}
    try:
        for role, command in commands.items():
            logs[role] = tmp_path / f"{role}.log"
            processes[role] = subprocess.Popen(
                command,
                cwd=app,
                env=env,
                stdout=logs[role].open("wb"),
                stderr=subprocess.STDOUT,
            )

        def started(role: str) -> bool:
            process = processes[role]
            if process.poll() is not None:
                raise AssertionError(f"{role} exited:\n{logs[role].read_text()}")
            return ready[role]()

        ready = {
            "worker": lambda: b" ready." in logs["worker"].read_bytes(),
            "beat": lambda: any(tmp_path.glob("celerybeat-schedule*")),
            "flower": lambda: port_open(flower_port),
            "gateway": lambda: port_open(gateway_port),
        }
        for role in commands:
            wait_for(lambda role=role: started(role), timeout=90, interval=0.5)
        # As the image's HEALTHCHECK does: each role read from its process's command line
        # (the checks run at once: each one imports the package, about 2 s of CPU).
        checks = {
            role: subprocess.Popen(
                ["dispatcher", "health", "auto", "--pid", str(p.pid), "--timeout", "10"],
                cwd=app,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for role, p in processes.items()
        }
        for role, check in checks.items():
            out, _ = check.communicate(timeout=120)
            assert check.returncode == 0, f"{role}: {out}\n{logs[role].read_text()[-3000:]}"
            assert out.startswith(f"{role}: healthy"), out
        # Flower's API is behind its basic auth; /healthcheck is not.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{flower_port}/api/workers", timeout=5)
        assert refused.value.code == 401
        # The worker consumes the queues its settings name.
        assert "dispatcher.bulk" not in logs["worker"].read_text().split("[tasks]")[0]
        # A stopped role turns unhealthy.
        processes["gateway"].terminate()
        processes["gateway"].wait(timeout=20)
        stopped = health("gateway", "--url", f"http://127.0.0.1:{gateway_port}/readyz")
        assert stopped.returncode == 1
        assert "UNHEALTHY" in stopped.stdout
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
