"""The benchmark runner, end to end in its smallest form, so it cannot rot unnoticed.

Asserts only that every request succeeded and that each figure was produced; timings belong
to benchmarks/RESULTS.md, never to a test.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_without_litellm_produces_every_figure(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--quick",
        "--skip-litellm",
        "--skip-portkey",
        "--settle-s=0.2",
        "--no-pin",
        "--no-plots",
        "--duration=0.3",
        "--warmup=0.1",
        "--concurrency=1,4",
        "--layouts=1x1,2x2",
        "--soak-streams=20",
        "--burst-requests=100",
        "--burst-connections=20",
        f"--out={tmp_path}",
    ]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads((tmp_path / "results.json").read_text())
    assert [t["target"] for t in results["targets"]] == [
        "direct",
        "switchboard-1x1",
        "switchboard-2x2",
        "switchboard-1x1-on",  # issue 22's everything on: a database key, ledger, otel
        "switchboard-1x1-on-no-otel",  # the same without otel: issue 19's callbacks off
    ]
    for target in results["targets"]:
        points = {(p["mode"], p["concurrency"]) for p in target["points"]}
        assert points == {(m, c) for m in ("non-stream", "stream") for c in (1, 4)}
        for point in target["points"]:
            assert point["requests"] > 0 and point["errors"] == 0 and point["bad_streams"] == 0
            assert point["rps"] > 0 and point["latency_ms"]["p50"] > 0
            if point["mode"] == "stream":
                assert point["ttft_ms"]["p50"] > 0
            if target["target"] != "direct":
                assert point["cpu_ms_per_request"] > 0 and point["peak_rss_mib"] > 0
                assert not math.isnan(point["added_p50_ms"])

    ours = results["targets"][1]
    assert ours["soak"]["all_completed"] and ours["soak"]["bad_streams"] == 0
    assert ours["burst"]["all_completed"] and ours["burst"]["server_errors_5xx"] == 0
    for scenario in (ours["soak"], ours["burst"]):
        assert scenario["peak_processes_rss_mib"] > 0 and scenario["peak_redis_rss_mib"] > 0
    assert {c["target"] for c in results["summary"]["targets"]}
    assert "## Targets (issue 5)" in (tmp_path / "RESULTS.md").read_text()
    assert {c["target"] for c in results["summary"]["targets_issue_19"]} == {
        f"otel callback, {mode} c={c}: CPU/request added"
        for mode in ("non-stream", "stream")
        for c in (1, 4)
    }
    ours_on = results["targets"][3]
    # The everything-on target really ran with a database key whose spend was counted.
    log = (tmp_path / "logs" / "switchboard-1x1-on.log").read_text()
    assert "Traceback" not in log, log[-2000:]
    assert (tmp_path / "data-on" / "switchboard.db").exists()
    assert all(p["errors"] == 0 for p in ours_on["points"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="Node.js/npm not installed")
def test_quick_run_measures_portkeys_gateway_beside_ours(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--quick",
        "--skip-litellm",
        "--no-pin",
        "--no-plots",
        "--duration=0.3",
        "--warmup=0.1",
        "--concurrency=1",
        "--layouts=1x1",
        "--soak-streams=5",
        "--burst-requests=20",
        "--burst-connections=5",
        "--settle-s=0.2",
        f"--out={tmp_path}",
    ]
    # The first run installs the gateway from npm into benchmarks/.portkey.
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["versions"]["portkey"]
    portkey = next(t for t in results["targets"] if t["target"] == "portkey")
    modes = {p["mode"]: p for p in portkey["points"]}
    assert set(modes) == {"non-stream", "stream"}
    non_stream = modes["non-stream"]
    assert non_stream["requests"] > 0 and non_stream["errors"] == 0
    assert non_stream["cpu_ms_per_request"] > 0
    # Its streams are measured too; whether they succeed is Portkey's (see report.py).
    assert modes["stream"]["requests"] + modes["stream"]["errors"] > 0
    assert [r["mode"] for r in results["summary"]["vs_portkey"]] == ["non-stream", "stream"]
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Against Portkey's gateway" in text and "## Targets (issue 22)" in text


@pytest.mark.slow
def test_profile_splits_cpu_per_request_by_process() -> None:
    argv = [sys.executable, "-m", "benchmarks.profile", "--duration=0.5", "--concurrency=4"]
    done = subprocess.run(
        [*argv, "--no-py-spy"], cwd=ROOT, capture_output=True, text=True, timeout=100
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for mode in ("non-stream, c=4", "stream (20 chunks), c=4"):
        assert f"### {mode}" in done.stdout
    # Each mode: a row per role in the split by process, and the front door's and worker's
    # again in the split of each into its event loop's thread and the rest.
    for role, count in (("front door", 4), ("worker", 4), ("redis", 2), ("**all**", 2)):
        rows = [line for line in done.stdout.splitlines() if line.startswith(f"| {role} |")]
        assert len(rows) == count, done.stdout
        assert all(float(row.split("|")[2].strip("* ").replace(",", "")) > 0 for row in rows)
    assert done.stdout.count("| process | event loop thread µs | other threads µs |") == 2


@pytest.mark.slow
def test_otel_cost_pairs_each_rate_with_its_rounds_run_without_otel() -> None:
    argv = [sys.executable, "-m", "benchmarks.otel_cost", "--rounds=1", "--rates=1"]
    done = subprocess.run(
        [*argv, "--duration=0.5", "--concurrency=4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for shape in ("non-stream", "stream"):
        assert any(line.startswith(f"| 1 | {shape} | ") for line in lines), done.stdout
        verdicts = [line for line in lines if line.startswith(f"| otel, sample_rate 1 | {shape} |")]
        assert len(verdicts) == 1 and verdicts[0].endswith(("| yes |", "| no |")), done.stdout
        floor = [line for line in lines if line.startswith(f"- {shape}: ")]
        assert len(floor) == 1 and "the least that tracing every request adds" in floor[0]
    assert any(line.startswith("The OpenTelemetry SDK, one request's 4 spans") for line in lines)
