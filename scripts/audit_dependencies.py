"""pip-audit over every pinned dependency (constraints.txt), honest about what it checked.

pip-audit asks a vulnerability service (PyPI's JSON API by default) about each pin. When
that service cannot answer, pip-audit skips the package ("Dependency not found on PyPI")
and still prints "No known vulnerabilities found" with exit code 0: a mirror that serves
packages but not the JSON API, or no network at all, would pass the audit having checked
nothing. So the audit carries a canary, a pin with published advisories
(:data:`CANARY`), and reads pip-audit's JSON report:

- a known vulnerability in a real pin fails the step (exit 1);
- the canary flagged means the service answered: the pins it looked up are audited;
- the canary not flagged means the service is blind here: the step says, in capitals,
  that the online audit checked nothing, and fails only when ``DISPATCHER_AUDIT_REQUIRED=1``
  (set in GitHub Actions, where the service is reachable).

When the service is blind, the pins are checked against a local advisory cache instead:
the ``safety-db`` package (PyUp's open database, installed with the dev tools), whose
date is printed, because it is old (its data is dated 2021-07-01) and knows nothing
published after it. A pin inside one of its advisories' ranges fails the step just as
an online finding does; the cache's own canary (:data:`CACHE_CANARY`) proves it was read.

Usage: ``python scripts/audit_dependencies.py [constraints.txt]``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
#: Jinja2 3.1.4 has three published advisories (CVE-2024-56201, CVE-2024-56326,
#: CVE-2025-27516); a service that knows of none of them answered nothing.
CANARY = ("jinja2", "3.1.4")
#: Jinja2 2.7.2 is inside the cache's advisory for CVE-2014-1402 (fixed in 2.7.3).
CACHE_CANARY = ("jinja2", "2.7.2")


def pins(constraints: Path) -> list[str]:
    """The ``name==version`` lines of a constraints file, comments dropped."""
    lines = (line.split("#", 1)[0].strip() for line in constraints.read_text().splitlines())
    return [line for line in lines if "==" in line]


def run_audit(requirements: list[str], timeout: int = 15) -> dict[str, Any]:
    """pip-audit's JSON report for ``requirements`` (no resolution: they are pinned)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "requirements.txt"
        path.write_text("\n".join(requirements) + "\n")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--requirement",
                str(path),
                "--no-deps",
                "--disable-pip",
                "--format",
                "json",
                "--progress-spinner",
                "off",
                "--timeout",
                str(timeout),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if not result.stdout.strip():
        raise SystemExit(f"pip-audit failed (exit {result.returncode}):\n{result.stderr}")
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def judge(report: dict[str, Any], canary: tuple[str, str] = CANARY) -> tuple[int, list[str]]:
    """Exit code and lines to print for pip-audit's ``report``."""
    lines: list[str] = []
    blind = True
    vulnerable: list[str] = []
    skipped: list[str] = []
    audited = 0
    for dep in report.get("dependencies", []):
        name, version = str(dep.get("name", "")).lower(), str(dep.get("version", ""))
        vulns = dep.get("vulns", [])
        if (name, version) == canary:
            blind = not vulns
            continue
        if "skip_reason" in dep:
            skipped.append(f"{name}=={version}")
            continue
        audited += 1
        if vulns:
            ids = ", ".join(str(v.get("id")) for v in vulns)
            vulnerable.append(f"{name}=={version}: {ids}")
    total = audited + len(skipped)
    if vulnerable:
        lines.append(f"pip-audit: {len(vulnerable)} pinned package(s) with known vulnerabilities:")
        lines.extend(f"  {v}" for v in vulnerable)
        return 1, lines
    if blind:
        lines.append(
            f"pip-audit: NOT CHECKED: the vulnerability service did not flag the canary "
            f"{canary[0]}=={canary[1]}, so it answered nothing here; none of the {total} "
            f"pins was audited ({len(skipped)} reported as not found)."
        )
        required = os.environ.get("DISPATCHER_AUDIT_REQUIRED") == "1"
        if required:
            lines.append("pip-audit: DISPATCHER_AUDIT_REQUIRED=1, so this fails the run.")
        return (1 if required else 0), lines
    lines.append(f"pip-audit: {audited} of {total} pins audited, no known vulnerabilities.")
    if skipped:
        lines.append(f"pip-audit: not found on the service: {', '.join(skipped)}")
    return 0, lines


def load_cache() -> tuple[dict[str, list[dict[str, Any]]], str]:
    """The local advisory cache (``safety-db``) by canonical package name, and its date."""
    # Found, not imported: the package's __init__ opens a path relative to the working folder.
    spec = importlib.util.find_spec("safety_db")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip-audit: the local advisory cache (safety-db) is not installed.")
    folder = Path(next(iter(spec.submodule_search_locations)))
    text = (folder / "insecure_full.json").read_text()
    raw: dict[str, Any] = json.loads(text)
    meta = raw.pop("$meta", {})
    stamp = datetime.fromtimestamp(int(meta.get("timestamp", 0)), tz=UTC).date().isoformat()
    return {canonicalize_name(name): entries for name, entries in raw.items()}, stamp


def cache_findings(pin: str, cache: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Ids of the cached advisories whose version ranges contain ``pin``."""
    name, _, version = pin.partition("==")
    try:
        parsed = Version(version)
    except InvalidVersion:
        return []
    found: list[str] = []
    for entry in cache.get(canonicalize_name(name), []):
        for spec in entry.get("specs", []):
            try:
                inside = parsed in SpecifierSet(str(spec), prereleases=True)
            except InvalidSpecifier:
                continue
            if inside:
                found.append(str(entry.get("cve") or entry.get("id")))
                break
    return found


def judge_offline(
    requirements: list[str], cache: dict[str, list[dict[str, Any]]], stamp: str
) -> tuple[int, list[str]]:
    """Exit code and lines for ``requirements`` checked against the local cache."""
    if not cache_findings("==".join(CACHE_CANARY), cache):
        return 1, [f"pip-audit: the local advisory cache ({stamp}) could not be read."]
    vulnerable = [
        f"  {pin}: {', '.join(ids)}" for pin in requirements if (ids := cache_findings(pin, cache))
    ]
    if vulnerable:
        head = f"pip-audit: local advisory cache ({stamp}): {len(vulnerable)} pinned package(s)"
        return 1, [f"{head} with known vulnerabilities:", *vulnerable]
    return 0, [
        f"pip-audit: {len(requirements)} pins checked against the local advisory cache "
        f"dated {stamp} (safety-db): none is in a known advisory's range. Advisories "
        f"published after {stamp} are not known to it."
    ]


def main(argv: list[str]) -> int:
    constraints = Path(argv[0]) if argv else ROOT / "constraints.txt"
    requirements = pins(constraints)
    report = run_audit([*requirements, "==".join(CANARY)])
    code, lines = judge(report)
    print("\n".join(lines))
    if code == 0 and lines[0].startswith("pip-audit: NOT CHECKED"):
        offline_code, offline_lines = judge_offline(requirements, *load_cache())
        print("\n".join(offline_lines))
        return offline_code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
