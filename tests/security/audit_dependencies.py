"""Issue #13 item 10: audit the image's dependency set (deploy/requirements.lock) for known
vulnerabilities with pip-audit, PyPA's auditor. `tests/run` runs it before pytest:

    python -m tests.security.audit_dependencies [pip-audit options, e.g. -s osv]

Exit 1 when a locked package has a known vulnerability, or when some packages could be
audited and others not (a partial answer proves nothing about the rest). Exit 0 with a line
that says SKIPPED when the advisory service cannot be reached at all (no network, or a
registry mirror without PyPI's per-release JSON API): nothing was audited then, and the line
says so. Set SWITCHBOARD_REQUIRE_AUDIT=1 to make that a failure too (a CI with internet).

A vulnerability accepted after review is listed in AUDIT_IGNORE with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

LOCK = Path(__file__).resolve().parents[2] / "deploy" / "requirements.lock"
# A service that does not answer (a network that drops packets) must not stall tests/run.
TIMEOUT_S = 60
REQUEST_TIMEOUT_S = "10"
# Vulnerability id -> why it does not apply to Switchboard (reviewed; empty today).
AUDIT_IGNORE: dict[str, str] = {}


def run_pip_audit(extra: list[str]) -> tuple[int, dict[str, Any] | None, str]:
    """pip-audit's exit code, its JSON report (None when it produced none) and its stderr."""
    command = [sys.executable, "-m", "pip_audit", "-r", str(LOCK), "--require-hashes"]
    # The lock is complete and hashed: no pip resolution, so nothing is downloaded.
    command += ["--disable-pip", "--progress-spinner", "off", "--format", "json", *extra]
    if "--timeout" not in extra:
        command += ["--timeout", REQUEST_TIMEOUT_S]
    for vuln_id in AUDIT_IGNORE:
        command += ["--ignore-vuln", vuln_id]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, None, f"Timeout: no answer within {TIMEOUT_S} s"
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    return done.returncode, report, done.stderr


def verdict(code: int, report: dict[str, Any] | None, stderr: str) -> tuple[str, str]:
    """("pass" | "fail" | "skip", what to print)."""
    if report is None:
        last = stderr.strip().splitlines()[-1:] or [f"exit {code}"]
        if "ConnectionError" in stderr or "NameResolution" in stderr or "Timeout" in stderr:
            return "skip", f"the vulnerability service could not be reached ({last[0][:160]})"
        return "fail", f"pip-audit failed: {last[0][:300]}"
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    if dependencies and len(skipped) == len(dependencies):
        reason = skipped[0]["skip_reason"]
        return "skip", f"the advisory service answered for no package (first: {reason})"
    found = [
        f"{d['name']} {d['version']}: {' / '.join([v['id'], *v.get('aliases', [])])} "
        f"(fixed in {', '.join(v['fix_versions']) or 'no release yet'})"
        for d in dependencies
        for v in d.get("vulns", [])
    ]
    if found:
        return "fail", "known vulnerabilities:\n  " + "\n  ".join(found)
    if skipped:
        names = ", ".join(d["name"] for d in skipped)
        return "fail", f"{len(skipped)} of {len(dependencies)} packages were not audited: {names}"
    if code != 0:
        return "fail", f"pip-audit exited {code}: {stderr.strip()[-300:]}"
    return "pass", f"{len(dependencies)} locked packages, no known vulnerability"


def main(argv: list[str]) -> int:
    outcome, message = verdict(*run_pip_audit(argv))
    if outcome == "skip" and os.environ.get("SWITCHBOARD_REQUIRE_AUDIT") == "1":
        outcome = "fail"
    label = {"pass": "passed", "fail": "FAILED", "skip": "SKIPPED, nothing was audited"}[outcome]
    print(f"dependency audit of {LOCK.name} {label}: {message}", file=sys.stderr)
    return 1 if outcome == "fail" else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
