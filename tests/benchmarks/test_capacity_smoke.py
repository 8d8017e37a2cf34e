"""benchmarks.capacity end to end in its smallest form: the single-Redis run, 2 front
doors + 2 workers on one Redis and on a 3-shard Redis Cluster all produce every figure the
capacity model needs. Asserts only that the figures exist and every request succeeded;
the numbers belong to docs/performance.md, never to a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.redis_cluster import REDIS_CLI, REDIS_SERVER

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)  # eight windows and two gateways, on a machine others share
@pytest.mark.skipif(REDIS_SERVER is None or REDIS_CLI is None, reason="no redis-server/cli")
def test_capacity_measures_both_setups_and_checks_the_model(tmp_path: Path) -> None:
    out = tmp_path / "CAPACITY.md"
    argv = [sys.executable, "-m", "benchmarks.capacity", "--no-pin", f"--out={out}"]
    argv += ["--duration=0.5", "--concurrency=4", "--idle=0.3", "--settle=0.5"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr

    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["meta"]["commit"] and saved["meta"]["loads"]
    phases = saved["phases"]
    measured = {(p["setup"], p["key"], p["mode"]) for p in phases}
    assert measured == {
        (setup, key, mode)
        for setup in ("single", "spread", "cluster")
        for key in ("master key", "database key")
        for mode in ("non-stream", "stream")
    }
    for phase in phases:
        assert phase["requests"] > 0 and phase["window_s"] > 0
        assert phase["cpu_s"]["front door"] > 0 and phase["cpu_s"]["worker"] > 0
        assert len(phase["shards"]) == (3 if phase["setup"] == "cluster" else 1)
        for used in phase["shards"].values():
            assert used["(bytes in)"] > 0 and used["(cpu µs)"] > 0
        # Every request reached Redis: the XADD that queues it, on one shard or another.
        assert sum(used.get("xadd", 0) for used in phase["shards"].values()) >= phase["requests"]
    text = out.read_text()
    for heading in ("## The model", "## Predicted (single Redis) against measured", "## Sizing"):
        assert heading in text
    # The lanes' slot was found on one of the cluster's nodes.
    assert "`{q}`" in text

    # The report is written again from the JSON alone, the same.
    again = tmp_path / "again.md"
    argv = [sys.executable, "-m", "benchmarks.capacity", f"--render={out.with_suffix('.json')}"]
    rendered = subprocess.run([*argv, f"--out={again}"], cwd=ROOT, capture_output=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    assert again.read_text() == text
