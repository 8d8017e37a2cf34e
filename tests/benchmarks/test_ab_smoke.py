"""benchmarks.ab, the side-by-side comparison of checkouts, in its smallest form: this
checkout against itself without a database, one short round at c=1. Only that it ran and
printed every figure; timings belong to docs/performance.md, never to a test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.profile import area_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_checkouts_side_by_side() -> None:
    argv = [sys.executable, "-m", "benchmarks.ab", str(ROOT), f"{ROOT},DATABASE_URL="]
    argv += ["--rounds=1", "--duration=0.5", "--modes=c1"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| non-stream c=1 |")]
    assert len(rows) == 2, done.stdout
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert all(float(cell.replace(",", "")) > 0 for cell in cells[2:]), row


def test_py_spy_relative_file_names_fall_in_their_library_area() -> None:
    assert area_of("StreamWriter._writelines (aiohttp/http_writer.py:116)").startswith("aiohttp")
    assert area_of("Relay.run (broker/relay.py:116)") == "switchboard: front door"
    assert area_of("Runner.run (/usr/lib/python3.11/asyncio/runners.py:118)").startswith("asyncio")
