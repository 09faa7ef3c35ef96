"""The dependency audit fails on a vulnerable pin and says so when it checked nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
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


def test_the_local_cache_finds_an_old_advisory_and_states_its_date() -> None:
    cache, stamp = audit.load_cache()
    assert stamp == "2021-07-01"
    assert "CVE-2014-1402" in audit.cache_findings("Jinja2==2.7.2", cache)
    assert audit.cache_findings("jinja2==3.1.6", cache) == []
    assert audit.cache_findings("not-a-package==1.0", cache) == []


def test_offline_a_pin_in_a_cached_advisory_fails_and_clean_pins_pass() -> None:
    cache, stamp = audit.load_cache()
    code, lines = audit.judge_offline(["celery==5.7.0", "Django==1.11.0"], cache, stamp)
    assert code == 1
    assert lines[0].startswith("pip-audit: local advisory cache (2021-07-01): 1 pinned package")
    assert lines[1].startswith("  Django==1.11.0: CVE-")
    code, lines = audit.judge_offline(["celery==5.7.0", "Django==5.2.19"], cache, stamp)
    assert code == 0
    assert "2 pins checked against the local advisory cache dated 2021-07-01" in lines[0]


def test_offline_an_unreadable_cache_fails() -> None:
    code, lines = audit.judge_offline(["celery==5.7.0"], {}, "1970-01-01")
    assert code == 1
    assert "could not be read" in lines[0]


def test_every_real_pin_is_clear_of_the_local_cache() -> None:
    cache, stamp = audit.load_cache()
    code, lines = audit.judge_offline(audit.pins(ROOT / "constraints.txt"), cache, stamp)
    assert (code, len(lines)) == (0, 1), lines
