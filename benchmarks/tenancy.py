"""What a database key costs on the request path (issue #17): the same gateway, the same
load, side by side in one run, with the master key and with a database key that has every
limit set (rpm, tpm, parallel requests, a budget, a team with its own budget), so its
admission checks and counts each of them.

    python -m benchmarks.tenancy [--duration 6] [--concurrency 1,8]

Both keys go through the same admission script and the same settlement, so the round
trips are the same by construction (the script replaces the XADD; the settlement rides
the worker's final-record pipeline); what differs is the work inside them and the front
door's Python. The figure is CPU ms per request of the whole process tree (front door,
worker, embedded Redis), measured from /proc. Phases alternate master, key, master, key
so that drift (a warm cache, a busy neighbour) falls on both alike. Writes a markdown row
per point to benchmarks/TENANCY.md (or --out)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks import scenarios
from benchmarks.gateways import MASTER_KEY, switchboard, write_config
from benchmarks.procs import TreeMonitor, wait_http_ready
from benchmarks.run import free_port, upstream

HERE = Path(__file__).parent
# Limits far above the load, so every request is admitted and every one is counted.
LIMITS = {"rpm_limit": 10**9, "tpm_limit": 10**12, "max_parallel_requests": 10_000}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tenancy", description=__doc__)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", default="8,32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds measured idle")
    parser.add_argument("--out", type=Path, default=HERE / "TENANCY.md")
    return parser.parse_args(argv)


def with_database(config: Path, data_dir: Path) -> None:
    text: dict[str, Any] = yaml.safe_load(config.read_text())
    text["general_settings"]["database_url"] = f"sqlite:///{data_dir / 'switchboard.db'}"
    config.write_text(yaml.safe_dump(text, sort_keys=False))


async def database_key(port: int) -> str:
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(headers=headers) as http:
        team = {"team_id": "bench", "max_budget": 10**9, **LIMITS}
        async with http.post(base + "/team/new", json=team) as reply:
            assert reply.status == 200, await reply.text()
        key = {"team_id": "bench", "max_budget": 10**9, "budget_duration": "30d", **LIMITS}
        async with http.post(base + "/key/generate", json=key) as reply:
            assert reply.status == 200, await reply.text()
            return str((await reply.json())["key"])


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="sb-bench-tenancy-") as tmp,
        upstream(Path(tmp), None) as upstream_port,
    ):
        root = Path(tmp)
        config = write_config(root / "config.yaml", f"http://127.0.0.1:{upstream_port}")
        with_database(config, root)
        port = free_port()
        target = switchboard(port, config, root, front_doors=1, workers=1, cpus=None)
        assert target.service is not None
        target.service.start()
        try:
            await wait_http_ready(port, target.ready_path, 60.0, target.service)
            keys = {"master key": MASTER_KEY, "database key": await database_key(port)}
            idle_cpu_per_s = await idle_cpu(target.service.pid, args.idle)
            print(f"idle CPU: {idle_cpu_per_s * 1000:.1f} ms/s", file=sys.stderr)
            for concurrency in [int(c) for c in args.concurrency.split(",")]:
                for _ in range(args.rounds):
                    for name, key in keys.items():
                        point = await scenarios.load(
                            target,
                            stream=False,
                            concurrency=concurrency,
                            duration_s=args.duration,
                            warmup_s=args.warmup,
                            drain_s=15.0,
                            api_key=key,
                        )
                        point["key"] = name
                        # Background work (heartbeats, monitors, the ledger's polls) runs
                        # whatever the load; charged per request it would favour the
                        # faster phase, so the net figure leaves it out.
                        busy_s = point["cpu_s"] - idle_cpu_per_s * point["duration_s"]
                        point["net_cpu_ms_per_request"] = busy_s * 1000 / point["requests"]
                        point.pop("latencies_ms", None)
                        rows.append(point)
                        print(_line(point), file=sys.stderr)
        finally:
            target.service.stop()
    return rows


async def idle_cpu(pid: int, seconds: float) -> float:
    """CPU seconds per second the gateway's tree spends with no request."""
    monitor = TreeMonitor(pid)
    monitor.start()
    await asyncio.sleep(seconds)
    usage = await monitor.stop()
    return usage.cpu_s / seconds


def _line(point: dict[str, Any]) -> str:
    return (
        f"| {point['key']} | {point['concurrency']} | {point['rps']:,.0f} | "
        f"{point['latency_ms']['p50']:.2f} | {point['latency_ms']['p99']:.2f} | "
        f"{point['cpu_ms_per_request']:.3f} | {point['net_cpu_ms_per_request']:.3f} | "
        f"{point['errors']} |"
    )


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Per concurrency: each key's median net CPU ms/request, and the median of the
    differences of each round's pair (master then database key, back to back), which
    drift between rounds (a neighbour's load) affects least."""
    lines = []
    for concurrency in sorted({row["concurrency"] for row in rows}):
        points = [row for row in rows if row["concurrency"] == concurrency]
        master = [r["net_cpu_ms_per_request"] for r in points if r["key"] == "master key"]
        key = [r["net_cpu_ms_per_request"] for r in points if r["key"] == "database key"]
        extra = statistics.median(k - m for m, k in zip(master, key, strict=True))
        lines.append(
            f"| {concurrency} | {statistics.median(master):.3f} | {statistics.median(key):.3f} "
            f"| {extra:+.3f} | {'yes' if extra <= 0.1 else '**no**'} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    rows = asyncio.run(run(args))
    load_after = os.getloadavg()
    text = "\n".join(
        [
            "# A database key on the request path (issue #17)",
            "",
            "Generated by `python -m benchmarks.tenancy` (see its docstring). One gateway",
            "(`switchboard up`, 1 front door + 1 worker, SQLite), non-stream requests, phases",
            "alternating between the master key and a database key with every limit set.",
            "",
            f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
            f"{os.cpu_count()} CPUs; load average before "
            f"{' '.join(f'{x:.2f}' for x in load_before)}, after "
            f"{' '.join(f'{x:.2f}' for x in load_after)} (a load above the CPU count means",
            "  other work shared the machine: the figures then carry its noise).",
            "",
            "Net CPU: the tree's CPU over the phase minus what it spends idle in as long",
            "(measured before the phases), per request answered.",
            "",
            "| c | master key net CPU ms/req (median) | database key (median) "
            "| extra (median of the rounds' pairs) | <= 0.1 ms |",
            "|---|---|---|---|---|",
            *summary(rows),
            "",
            "| key | c | rps | p50 ms | p99 ms | CPU ms/req | net CPU ms/req | errors |",
            "|---|---|---|---|---|---|---|---|",
            *(_line(row) for row in rows),
            "",
        ]
    )
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(json.dumps(rows, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
