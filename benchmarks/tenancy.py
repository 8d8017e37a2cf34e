"""What a database key costs on the request path (issue #17): the same gateway, the same
load, side by side in one run, with the master key and with a database key that has every
limit set (rpm, tpm, parallel requests, a budget, a team with its own budget), so its
admission checks and counts each of them.

    python -m benchmarks.tenancy [--duration 4] [--rates 200,400] [--rounds 7]

Both keys go through the same admission script and the same settlement, so the round
trips are the same (tests/broker/tenancy/test_round_trips.py counts them); what differs
is the work inside them and the front door's Python. Both keys are offered the same rate
(open loop): under a closed loop the faster phase batches more Redis calls per round trip
and looks cheaper per request, which swamped the difference on a shared machine. The
figure is CPU ms per request of the whole process tree (front door, worker, embedded
Redis), measured from /proc, and split by role. Phases alternate master, key, master, key
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

from benchmarks import scenarios
from benchmarks.gateways import MASTER_KEY, switchboard, write_config
from benchmarks.procs import TreeMonitor, cpu_s, descendants, is_redis, wait_http_ready
from benchmarks.realistic import database_key, with_database
from benchmarks.run import free_port, upstream
from benchmarks.tenancy_instructions import run as script_instructions
from benchmarks.tenancy_scripts import script_cpu

HERE = Path(__file__).parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tenancy", description=__doc__)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--rates",
        default="200,400",
        help="offered requests/s, one point each (open loop: both keys at the same rate, "
        "so neither gains from batching more under a higher throughput); 0: closed loop",
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds measured idle")
    parser.add_argument("--out", type=Path, default=HERE / "TENANCY.md")
    parser.add_argument(
        "--baseline", default=None, help="a git revision whose scripts to count beside these"
    )
    return parser.parse_args(argv)


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
            for rate in [float(r) for r in args.rates.split(",")]:
                for _ in range(args.rounds):
                    for name, key in keys.items():
                        point = await _phase(target, args, key, rate, idle_cpu_per_s)
                        point["key"] = name
                        rows.append(point)
                        print(_line(point), file=sys.stderr)
        finally:
            target.service.stop()
    return rows


async def _phase(
    target: Any, args: argparse.Namespace, key: str, rate: float, idle_cpu_per_s: float
) -> dict[str, Any]:
    """One phase of load with `key`, and where its CPU went (front door, worker, Redis)."""
    assert target.service is not None
    pids = descendants(target.service.pid)
    before = {role: cpu_s(members) for role, members in _roles(pids).items()}
    point = await scenarios.load(
        target,
        stream=False,
        concurrency=args.connections if rate else 32,
        duration_s=args.duration,
        warmup_s=args.warmup,
        drain_s=15.0,
        api_key=key,
        rate_per_s=rate or None,
    )
    used = {role: cpu_s(members) - before[role] for role, members in _roles(pids).items()}
    point["rate"] = rate
    # Background work (heartbeats, monitors, the ledger's polls) runs whatever the load;
    # charged per request it would favour the faster phase, so the net figure leaves it out.
    busy_s = point["cpu_s"] - idle_cpu_per_s * point["duration_s"]
    point["net_cpu_ms_per_request"] = busy_s * 1000 / point["requests"]
    # The roles' shares of the whole call (warm-up and drain included) applied to the
    # measured window's CPU per request: where a key's extra goes.
    total = sum(used.values()) or 1.0
    point["role_ms_per_request"] = {
        role: point["cpu_ms_per_request"] * spent / total for role, spent in used.items()
    }
    point.pop("latencies_ms", None)
    return point


def _roles(pids: list[int]) -> dict[str, list[int]]:
    """The gateway's processes by role: Redis, workers, and the front door (the rest)."""
    roles: dict[str, list[int]] = {"front door": [], "worker": [], "redis": []}
    for pid in pids:
        if is_redis(pid):
            roles["redis"].append(pid)
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        roles["worker" if b"worker" in argv else "front door"].append(pid)
    return roles


async def idle_cpu(pid: int, seconds: float) -> float:
    """CPU seconds per second the gateway's tree spends with no request."""
    monitor = TreeMonitor(pid)
    monitor.start()
    await asyncio.sleep(seconds)
    usage = await monitor.stop()
    return usage.cpu_s / seconds


def _point_name(rate: float) -> str:
    return f"{rate:,.0f} req/s" if rate else "closed loop, 32 conns"


def _line(point: dict[str, Any]) -> str:
    roles = point["role_ms_per_request"]
    return (
        f"| {point['key']} | {_point_name(point['rate'])} | {point['rps']:,.0f} | "
        f"{point['latency_ms']['p50']:.2f} | {point['latency_ms']['p99']:.2f} | "
        f"{point['cpu_ms_per_request']:.3f} | {point['net_cpu_ms_per_request']:.3f} | "
        f"{roles['front door']:.3f} | {roles['worker']:.3f} | {roles['redis']:.3f} | "
        f"{point['errors']} |"
    )


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Per point: each key's median net CPU ms/request, the median of the differences of
    each round's pair (master then database key, back to back: drift between rounds, a
    neighbour's load, affects it least), and that median per role."""
    lines = []
    for rate in sorted({row["rate"] for row in rows}):
        points = [row for row in rows if row["rate"] == rate]
        master = [r for r in points if r["key"] == "master key"]
        key = [r for r in points if r["key"] == "database key"]
        pairs = list(zip(master, key, strict=True))
        extra = statistics.median(
            k["net_cpu_ms_per_request"] - m["net_cpu_ms_per_request"] for m, k in pairs
        )
        by_role = [
            statistics.median(
                k["role_ms_per_request"][role] - m["role_ms_per_request"][role] for m, k in pairs
            )
            for role in ("front door", "worker", "redis")
        ]
        net = [
            statistics.median(r["net_cpu_ms_per_request"] for r in side) for side in (master, key)
        ]
        lines.append(
            f"| {_point_name(rate)} | {net[0]:.3f} | {net[1]:.3f} | {extra:+.3f} | "
            + " | ".join(f"{value:+.3f}" for value in by_role)
            + f" | {'yes' if extra <= 0.1 else '**no**'} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    rows = asyncio.run(run(args))
    scripts = asyncio.run(script_cpu()) + asyncio.run(script_cpu(per_pipeline=1))
    instructions = asyncio.run(script_instructions(args.baseline, 400))
    load_after = os.getloadavg()
    text = "\n".join(
        [
            "# A database key on the request path (issue #17)",
            "",
            "Generated by `python -m benchmarks.tenancy` (see its docstring). One gateway",
            "(`switchboard up`, 1 front door + 1 worker, SQLite), non-stream requests, phases",
            "alternating between the master key and a database key with every limit set (rpm,",
            "tpm, parallel requests, a budget with a period) and a team with its own budget,",
            "both offered the same rate (open loop), so neither batches more than the other.",
            "",
            f"- Date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
            f"{os.cpu_count()} CPUs; load average before "
            f"{' '.join(f'{x:.2f}' for x in load_before)}, after "
            f"{' '.join(f'{x:.2f}' for x in load_after)} (a load above the CPU count means",
            "  other work shared the machine: the figures then carry its noise).",
            "",
            "Net CPU: the tree's CPU over the phase minus what it spends idle in as long",
            "(measured before the phases), per request answered. By role: the CPU of the",
            "front door, the worker and Redis per request (each role's share of the phase),",
            "as the median of the rounds' differences.",
            "",
            "| offered | master key net CPU ms/req (median) | database key (median) "
            "| extra (median of the rounds' pairs) | front door | worker | Redis | <= 0.1 ms |",
            "|---|---|---|---|---|---|---|---|",
            *summary(rows),
            "",
            "Redis alone (`benchmarks/tenancy_scripts.py`): a private redis-server's CPU µs",
            "per request on the admission and settlement scripts, by the number of scopes a",
            "request counts against, each with rpm, tpm, parallel requests and a budget (0:",
            "the master key; 2: the database key above, and its team), 50 requests a round",
            "trip, and one (as a lone request meets Redis: its caches cold, the cost higher).",
            "",
            "| requests a round trip | scopes | admission µs | settlement µs | both | extra |",
            "|---|---|---|---|---|---|",
            *scripts,
            "",
            "The same scripts in instructions (`benchmarks/tenancy_instructions.py`: the",
            "redis-server under callgrind, which counts exactly what a loaded machine's CPU",
            "time blurs), 50 requests a round trip, per request"
            + (f", beside the scripts at `{args.baseline}`:" if args.baseline else ":"),
            "",
            "| version | scopes | admission instructions | settlement | both | extra |",
            "|---|---|---|---|---|---|",
            *instructions,
            "",
            "| key | offered | rps | p50 ms | p99 ms | CPU ms/req | net CPU ms/req "
            "| front door | worker | Redis | errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
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
