"""The GitHub workflows keep their promises: pinned actions, least privilege, one run per
ref at a time, the README's test command on every supported Python, gated deploys."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def load(path: Path) -> dict[str, Any]:
    workflow: dict[str, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_and_permissions_are_least(path: Path) -> None:
    workflow = load(path)
    for step in steps(workflow):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    assert workflow["permissions"] == {"contents": "read"}
    assert "concurrency" in workflow
    for name, job in workflow["jobs"].items():
        granted = job.get("permissions", {})
        assert "write-all" not in str(granted), name
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes <= {"packages"}, (name, writes)


def test_ci_runs_the_readme_command_on_every_supported_python() -> None:
    ci = load(ROOT / ".github" / "workflows" / "ci.yml")
    assert {"pull_request", "push", "workflow_call"} <= set(ci["on"])
    job = ci["jobs"]["test"]
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    assert set(job["services"]) == {"redis", "postgres"}
    [run] = [s for s in job["steps"] if "run" in s]
    assert run["run"] == "bash scripts/test"
    assert run["env"]["DISPATCHER_AUDIT_REQUIRED"] == "1"
    assert "bash scripts/test" in (ROOT / "README.md").read_text().split("\n## ", 1)[0]


def test_deploys_follow_the_gates_and_are_gated_by_environments() -> None:
    deploy = load(ROOT / ".github" / "workflows" / "deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main", "develop"]}}
    assert deploy["concurrency"]["cancel-in-progress"] is False
    jobs = deploy["jobs"]
    assert jobs["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert jobs["image"]["needs"] == "ci"
    assert jobs["image"]["permissions"] == {"contents": "read", "packages": "write"}
    build = next(s for s in jobs["image"]["steps"] if s.get("id") == "build")
    assert "github.sha" in build["with"]["tags"] and "github.ref_name" in build["with"]["tags"]
    assert build["with"]["cache-from"].startswith("type=registry")
    for environment, branch in (("staging", "develop"), ("production", "main")):
        job = jobs[f"deploy-{environment}"]
        assert job["environment"]["name"] == environment
        assert job["if"] == f"github.ref == 'refs/heads/{branch}'"
        assert job["needs"] == "image"
        assert any("/readyz" in s.get("run", "") for s in job["steps"])
    notify = jobs["notify"]
    assert notify["if"] == "always()"
    assert set(notify["needs"]) == {"ci", "image", "deploy-staging", "deploy-production"}
