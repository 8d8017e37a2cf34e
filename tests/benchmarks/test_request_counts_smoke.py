"""benchmarks.request_counts in its smallest form: this checkout, no database, 20 non-stream
requests at c=1. Only that every process's counters moved (the sitecustomize hooks ran in
the front door and the worker) and Redis executed commands; the counts themselves belong to
docs/performance.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_counts_tasks_round_trips_and_bytes_in_each_process(tmp_path: Path) -> None:
    out = tmp_path / "counts.json"
    argv = [sys.executable, "-m", "benchmarks.request_counts", str(ROOT), "--configs=off"]
    argv += ["--modes=c1", "--requests=20", "--warmup=5", "--idle=0.3", "--no-pin"]
    done = subprocess.run(
        [*argv, f"--json={out}"], cwd=ROOT, capture_output=True, text=True, timeout=100
    )
    assert done.returncode == 0, done.stdout + done.stderr

    (figures,) = json.loads(out.read_text())
    assert figures["requests"] == 20 and figures["redis_commands"] > 0
    for role in ("front door", "worker"):
        counted = figures["per_request"][role]
        assert counted["tasks"] > 0, role
        assert counted["redis_round_trips"] > 0, role
        assert counted["redis_bytes_written"] > 0 and counted["redis_bytes_read"] > 0, role
    # Every request was queued: an XADD, sent alone or run by the admission script.
    assert figures["redis_by_command"].get("xadd", 0) >= 1
