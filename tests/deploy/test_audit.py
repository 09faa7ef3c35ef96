"""The dependency audit fails on a vulnerable pin and says so when it checked nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.scripts import load_script

audit = load_script("audit_dependencies")
CANARY_FLAGGED = {"name": "jinja2", "version": "3.1.4", "vulns": [{"id": "GHSA-q2x7-8rv6-6q7h"}]}
NOT_FOUND = "Dependency not found on PyPI and could not be audited: x (1)"


def report(*deps: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(deps), "fixes": []}


def test_a_vulnerable_pin_fails() -> None:
    code, lines = audit.judge(
        report(
            CANARY_FLAGGED,
            {"name": "celery", "version": "5.7.0", "vulns": []},
            {"name": "jinja2", "version": "3.1.5", "vulns": [{"id": "CVE-2025-27516"}]},
        )
    )
    assert code == 1
    assert lines[1] == "  jinja2==3.1.5: CVE-2025-27516"


def test_clean_pins_pass_when_the_service_answered() -> None:
    code, lines = audit.judge(
        report(
            CANARY_FLAGGED,
            {"name": "celery", "version": "5.7.0", "vulns": []},
            {"name": "private-pkg", "version": "1", "vulns": [], "skip_reason": NOT_FOUND},
        )
    )
    assert code == 0
    assert lines[0] == "pip-audit: 1 of 2 pins audited, no known vulnerabilities."
    assert "private-pkg==1" in lines[1]


@pytest.mark.parametrize(("required", "code"), [(None, 0), ("1", 1)])
def test_a_blind_service_is_reported_and_fails_only_when_required(
    monkeypatch: pytest.MonkeyPatch, required: str | None, code: int
) -> None:
    if required is None:
        monkeypatch.delenv("DISPATCHER_AUDIT_REQUIRED", raising=False)
    else:
        monkeypatch.setenv("DISPATCHER_AUDIT_REQUIRED", required)
    blind = report(
        {"name": "jinja2", "version": "3.1.4", "vulns": [], "skip_reason": NOT_FOUND},
        {"name": "celery", "version": "5.7.0", "vulns": [], "skip_reason": NOT_FOUND},
    )
    got, lines = audit.judge(blind)
    assert got == code
    assert lines[0].startswith("pip-audit: NOT CHECKED")
    assert "none of the 1 pins was audited" in lines[0]


def test_pins_are_read_from_the_constraints_file(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("# comment\ncelery==5.7.0\n\nJinja2==3.1.6  # pinned\n")
    assert audit.pins(path) == ["celery==5.7.0", "Jinja2==3.1.6"]
