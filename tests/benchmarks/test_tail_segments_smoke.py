"""benchmarks.tail_segments in its smallest form: a second of c=1 with everything on, the
probe on, unpinned. Only that every request's spans came back and joined, each process's
probe noted its work, and the tables were printed; the figures belong to
docs/performance.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_request_is_joined_with_its_spans_and_put_down_to_background_work(
    tmp_path: Path,
) -> None:
    argv = [sys.executable, "-m", "benchmarks.tail_segments", "--duration=1", "--warmup=0.5"]
    argv += ["--probe", "--no-pin", f"--out={tmp_path}"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    measured, joined = done.stdout.split(" requests measured, ", 1)
    assert int(measured) > 0 and joined.startswith(f"{measured} with every span")
    assert "| record -> relay end |" in done.stdout
    assert "| a ledger batch began |" in done.stdout
    noted = {
        line.split()[0]
        for path in (tmp_path / "probe").glob("*.txt")
        for line in path.read_text().splitlines()
    }
    # The worker's jobs and upstream calls, and the front door's ledger batches.
    assert {"job", "upstream", "ledger-write"} <= noted
