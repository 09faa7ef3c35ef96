"""``.env.example`` and the README's settings table are generated from ``Settings`` and
kept in sync; every setting has a ``#:`` comment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dispatcher import Settings
from tests.deploy.scripts import load_script

reference = load_script("settings_reference")


def test_env_example_and_the_readme_table_are_up_to_date() -> None:
    assert reference.main(["--check"]) == 0, "run: python scripts/settings_reference.py"


def test_every_field_of_every_group_is_listed_with_a_meaning() -> None:
    found = reference.variables()
    fields = sum(
        1
        for cls in reference.GROUPS
        for name in cls.model_fields
        if name not in ("smtp", "push", "gateway")
    )
    assert len(found) == fields > 60
    assert all(v.meaning for v in found)
    assert len({v.name for v in found}) == len(found)
    names = {v.name for v in found}
    assert {
        "DISPATCHER_DATABASE_URL",
        "DISPATCHER_SMTP_HOST",
        "DISPATCHER_GATEWAY_JWT_SECRET",
    } <= names


def test_a_field_without_a_comment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "settings.py"
    text = reference.SOURCE.read_text()
    source.write_text(re.sub(r"(    #:[^\n]*\n)+(    broker_url:)", r"\2", text))
    monkeypatch.setattr(reference, "SOURCE", source)
    with pytest.raises(SystemExit, match=r"without a '#:' comment: Settings\.broker_url"):
        reference.variables()


def test_a_stale_file_fails_the_check_and_is_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme, env = tmp_path / "README.md", tmp_path / ".env.example"
    readme.write_text(reference.README.read_text().replace("`DISPATCHER_BROKER_URL`", "`X`"))
    env.write_text(reference.ENV_EXAMPLE.read_text())
    monkeypatch.setattr(reference, "README", readme)
    monkeypatch.setattr(reference, "ENV_EXAMPLE", env)
    assert reference.main(["--check"]) == 1
    assert "README.md is out of date" in capsys.readouterr().out
    assert reference.main([]) == 0
    assert reference.main(["--check"]) == 0
    assert readme.read_text() == reference.README.read_text()
    readme.write_text("no markers")
    with pytest.raises(SystemExit, match="markers"):
        reference.main([])


def test_every_default_in_env_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = reference.ENV_EXAMPLE.read_text().splitlines()
    values = dict(
        line[2:].split("=", 1) for line in lines if line.startswith("# DISPATCHER_") and "=" in line
    )
    assert len(values) == len(reference.variables())
    for name, value in values.items():
        if value:
            monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.lease_seconds == 300
    assert settings.smtp.port == 587
