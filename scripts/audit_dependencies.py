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
  that nothing was audited, and fails only when ``DISPATCHER_AUDIT_REQUIRED=1``
  (set in GitHub Actions, where the service is reachable).

Usage: ``python scripts/audit_dependencies.py [constraints.txt]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Jinja2 3.1.4 has three published advisories (CVE-2024-56201, CVE-2024-56326,
#: CVE-2025-27516); a service that knows of none of them answered nothing.
CANARY = ("jinja2", "3.1.4")


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


def main(argv: list[str]) -> int:
    constraints = Path(argv[0]) if argv else ROOT / "constraints.txt"
    report = run_audit([*pins(constraints), "==".join(CANARY)])
    code, lines = judge(report)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
