"""The wheel carries every package, the migrations, the gateway's page and the seed
templates (mapped from the top-level templates/ folder), and an installed copy finds them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

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
