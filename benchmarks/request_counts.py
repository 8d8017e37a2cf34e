"""Per request, counted: the asyncio tasks each process of Switchboard creates, its redis-py
round trips and the bytes it writes to and reads from Redis, and the commands Redis executes,
for one or more checkouts side by side (as benchmarks.ab takes them).

    python -m benchmarks.request_counts /work/wt/base-d1f851b . --configs off
    python -m benchmarks.request_counts . --configs off,on --requests 2000 --json out.json

For each checkout and configuration (`off`: no database, `DATABASE_URL=`; `on`: issue #22's
everything on, benchmarks/realistic.py: a database key, the SQLite ledger, an `otel`
callback to a local sink) it starts `switchboard up` (1 front door + 1 worker, embedded
Redis, no batch worker where the checkout has them) against the fake upstream, with
benchmarks/count_hooks.py as the processes' sitecustomize. Then, per mode (non-stream c=1,
non-stream c=64, stream c=1), it warms up, reads every process's counters (SIGUSR2) and
Redis's INFO, sends exactly `--requests` requests, reads them again and divides the
difference by the requests. An idle window first gives each process's background rate
(its loops' round trips and tasks a second, load or not), printed beside the figures.
Latencies are printed too, but they are those of an instrumented run: for the targets read
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import gateways, realistic
from benchmarks.ab import pct, service_for
from benchmarks.count_hooks import COUNT_DIR_ENV, COUNTS, DUMP_SIGNAL, counts_path
from benchmarks.loadgen import Client, build_request, wait_until_done
from benchmarks.procs import Service, wait_http_ready
from benchmarks.profile import is_batch_worker, redis_counters, redis_url_of, redis_used, roles
from benchmarks.run import free_port, run_pinned, upstream

HOOKS = Path(__file__).with_name("count_hooks.py")
MODES = {
    "c1": ("non-stream c=1", False, 1),
    "c64": ("non-stream c=64", False, 64),
    "stream": ("stream c=1", True, 1),
}
COUNTED = tuple(name for name in COUNTS if name != "dumps")


@dataclass
class Figures:
    """One checkout, configuration and mode: per request unless named otherwise."""

    checkout: str
    config: str
    mode: str
    requests: int = 0
    window_s: float = 0.0
    per_request: dict[str, dict[str, float]] = field(default_factory=dict)  # role -> counter
    background_per_s: dict[str, dict[str, float]] = field(default_factory=dict)
    # role -> the commonest round trips (their commands, in order) -> how many a request
    shapes: dict[str, dict[str, float]] = field(default_factory=dict)
    redis_commands: float = 0.0  # executed by Redis (INFO commandstats; scripts' included)
    redis_by_command: dict[str, float] = field(default_factory=dict)
    redis_bytes_in: float = 0.0
    redis_bytes_out: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ttft_p50_ms: float | None = None
    skipped: str | None = None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="+", help="PATH or PATH,NAME=VALUE,... (as ab.py)")
    parser.add_argument("--configs", default="off,on", help="comma list of 'off', 'on'")
    parser.add_argument("--modes", default="c1,c64,stream", help="comma list of " + ",".join(MODES))
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per mode")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests before")
    parser.add_argument("--idle", type=float, default=5.0, help="idle seconds for background")
    parser.add_argument(
        "--batch-workers",
        type=int,
        help="`up --batch-workers N` where a checkout takes it (default: its own default)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    return parser.parse_args(argv)


@dataclass
class Snapshot:
    by_role: dict[str, Counter[str]]
    shapes: dict[str, Counter[str]]
    redis: Counter[str]
    at: float


class Gateway:
    """One running `up` with the counting hooks, its processes by role."""

    def __init__(self, service: Service, port: int, counts_dir: Path) -> None:
        self.service = service
        self.port = port
        self.counts_dir = counts_dir
        self.api_key = gateways.MASTER_KEY
        self.by_role: dict[str, list[int]] = {}
        self.redis_url = ""

    def find_processes(self) -> None:
        found = roles(self.service.pid)
        batch = [pid for pid in found["worker"] if is_batch_worker(pid)]
        self.by_role = {"front door": found["front door"], "worker": found["worker"]}
        self.by_role["worker"] = [pid for pid in found["worker"] if pid not in batch]
        if batch:
            self.by_role["batch worker"] = batch
        self.redis_url = redis_url_of(self.by_role["worker"][0])

    def _read(self, pid: int) -> dict[str, Any]:
        try:
            record: dict[str, Any] = json.loads(counts_path(self.counts_dir, pid).read_text())
        except (OSError, ValueError):
            return {"dumps": 0}
        return record

    async def counters(self, timeout_s: float = 10.0) -> dict[int, dict[str, Any]]:
        """Every process's counters now: signalled, then read once each has written again."""
        pids = [pid for members in self.by_role.values() for pid in members]
        before = {pid: self._read(pid)["dumps"] for pid in pids}
        for pid in pids:
            os.kill(pid, DUMP_SIGNAL)
        deadline = time.monotonic() + timeout_s
        found: dict[int, dict[str, Any]] = {}
        while len(found) < len(pids):
            for pid in pids:
                record = self._read(pid)
                if record["dumps"] > before[pid]:
                    found[pid] = record
            if time.monotonic() > deadline:
                raise RuntimeError(f"no counters from {set(pids) - set(found)}")
            await asyncio.sleep(0.01)
        return found

    async def snapshot(self) -> Snapshot:
        records = await self.counters()
        by_role = {
            role: Counter({name: sum(records[pid][name] for pid in pids) for name in COUNTED})
            for role, pids in self.by_role.items()
        }
        shapes = {
            role: sum((Counter(records[pid].get("shapes", {})) for pid in pids), Counter[str]())
            for role, pids in self.by_role.items()
        }
        redis = await asyncio.to_thread(redis_counters, self.redis_url)
        return Snapshot(by_role, shapes, redis, time.monotonic())


def shapes_per(
    before: Snapshot, after: Snapshot, divisor: float, top: int = 6
) -> dict[str, dict[str, float]]:
    found = {}
    for role, counts in after.shapes.items():
        used = counts - before.shapes[role]
        found[role] = {shape: n / divisor for shape, n in used.most_common(top)}
    return found


def per(before: Snapshot, after: Snapshot, divisor: float) -> dict[str, dict[str, float]]:
    return {
        role: {name: (after.by_role[role][name] - counts[name]) / divisor for name in COUNTED}
        for role, counts in before.by_role.items()
    }


async def send(gateway: Gateway, stream: bool, concurrency: int, requests: int) -> Client:
    model = "bench-stream" if stream else "bench"
    request = build_request(gateway.port, model, stream=stream, api_key=gateway.api_key)
    client = Client(gateway.port, request, total_requests=requests)
    conns = await client.open(concurrency)
    client.is_measuring = True
    client.start(conns)
    done = await wait_until_done(client, 600.0)
    await client.stop(conns, 5.0)
    if not done or client.sample.errors or len(client.sample.latencies_s) != requests:
        raise RuntimeError(f"requests failed: {client.sample.errors} ({client.completed} done)")
    return client


async def measure_mode(
    gateway: Gateway, figures: Figures, args: argparse.Namespace, background: Figures
) -> None:
    _, stream, concurrency = MODES[figures.mode]
    await send(gateway, stream, concurrency, args.warmup)
    before = await gateway.snapshot()
    client = await send(gateway, stream, concurrency, args.requests)
    after = await gateway.snapshot()
    figures.requests = args.requests
    figures.window_s = after.at - before.at
    figures.per_request = per(before, after, args.requests)
    figures.shapes = shapes_per(before, after, args.requests)
    figures.background_per_s = background.background_per_s
    used = redis_used(before.redis, after.redis)
    calls = {name: n for name, n in used.items() if not name.startswith("(") and n > 0}
    figures.redis_commands = sum(calls.values()) / args.requests
    figures.redis_by_command = {name: n / args.requests for name, n in sorted(calls.items())}
    figures.redis_bytes_in = used["(bytes in)"] / args.requests
    figures.redis_bytes_out = used["(bytes out)"] / args.requests
    figures.p50_ms = pct(client.sample.latencies_s, 0.5) * 1e3
    figures.p99_ms = pct(client.sample.latencies_s, 0.99) * 1e3
    if stream:
        figures.ttft_p50_ms = pct(client.sample.ttfts_s, 0.5) * 1e3


async def idle_rates(gateway: Gateway, checkout: str, config: str, idle_s: float) -> Figures:
    before = await gateway.snapshot()
    await asyncio.sleep(idle_s)
    after = await gateway.snapshot()
    figures = Figures(checkout, config, "idle")
    figures.background_per_s = per(before, after, after.at - before.at)
    return figures


def start_gateway(
    spec: str,
    config_name: str,
    config: Path,
    tmp: Path,
    cpus: str | None,
    otlp_url: str,
    batch_workers: int | None,
) -> Gateway:
    logs = Path(tempfile.mkdtemp(prefix=f"{config_name}-", dir=tmp))
    counts_dir = logs / "counts"
    counts_dir.mkdir()
    hooks_dir = tmp / "hooks"
    hooks_dir.mkdir(exist_ok=True)
    shutil.copy(HOOKS, hooks_dir / "sitecustomize.py")
    env = {COUNT_DIR_ENV: str(counts_dir)}
    if config_name == "off":
        env["DATABASE_URL"] = ""
    else:  # its own database: an older checkout's schema never meets a newer one's
        on = logs / "config-on.yaml"
        config = realistic.everything_on(config, on, logs / "data-on", otlp_url)
    service, port = service_for(
        spec, config, logs, cpus, path_first=hooks_dir, env_extra=env, batch_workers=batch_workers
    )
    return Gateway(service, port, counts_dir)


async def run_gateway(
    args: argparse.Namespace, config_name: str, gateway: Gateway
) -> list[Figures]:
    name = gateway.service.name
    gateway.service.start()
    try:
        await wait_http_ready(gateway.port, "/health/readiness", 60, gateway.service)
        if config_name == "on":
            try:
                gateway.api_key = await realistic.database_key(gateway.port)
            except (AssertionError, OSError, ValueError) as exc:
                reason = f"no database keys here ({type(exc).__name__})"
                print(f"{name} {config_name}: skipped, {reason}", flush=True)
                return [Figures(name, config_name, mode, skipped=reason) for mode in args.modes]
        gateway.find_processes()
        background = await idle_rates(gateway, name, config_name, args.idle)
        results = []
        for mode in args.modes:
            figures = Figures(name, config_name, mode)
            await measure_mode(gateway, figures, args, background)
            print(line(figures), flush=True)
            results.append(figures)
        return results
    finally:
        gateway.service.stop()


def line(f: Figures) -> str:
    roles_text = "; ".join(
        f"{role}: {c['tasks']:.1f} tasks, {c['redis_round_trips']:.1f} round trips, "
        f"{c['redis_bytes_written']:,.0f}/{c['redis_bytes_read']:,.0f} B out/in"
        for role, c in f.per_request.items()
    )
    return (
        f"  {f.config:3} {MODES[f.mode][0]:16} {f.checkout:16} {roles_text}; "
        f"redis {f.redis_commands:.1f} cmds; p50 {f.p50_ms:.2f} ms (counted run)"
    )


async def run(args: argparse.Namespace, plan: dict[str, str | None]) -> list[Figures]:
    results: list[Figures] = []
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        upstream(Path(tmp_name), plan["client"]) as up_port,
    ):
        tmp = Path(tmp_name)
        config = gateways.write_config(tmp / "config.yaml", f"http://127.0.0.1:{up_port}")
        async with realistic.OtlpSink(free_port()) as sink:
            for config_name in args.configs:
                for spec in args.checkouts:
                    gateway = start_gateway(
                        spec,
                        config_name,
                        config,
                        tmp,
                        plan["gateway"],
                        sink.url,
                        args.batch_workers,
                    )
                    results += await run_gateway(args, config_name, gateway)
    return results


def markdown(results: list[Figures], requests: int) -> str:
    """One row per configuration, mode and checkout (each cell: front door / worker, and
    / batch worker where `up` runs one); then each process's background."""
    lines = [
        f"Per request ({requests:,} requests a mode), counted in each process "
        "(front door / worker [/ batch worker]):",
        "",
        "| config | mode | checkout | tasks | round trips | bytes to Redis | bytes from Redis "
        "| Redis commands executed |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]

    def cell(f: Figures, name: str, form: str) -> str:
        return " / ".join(format(c[name], form) for c in f.per_request.values())

    for f in results:
        if f.skipped:
            continue
        lines.append(
            f"| {f.config} | {MODES[f.mode][0]} | {f.checkout} | {cell(f, 'tasks', '.1f')} "
            f"| {cell(f, 'redis_round_trips', '.2f')} | {cell(f, 'redis_bytes_written', ',.0f')} "
            f"| {cell(f, 'redis_bytes_read', ',.0f')} | {f.redis_commands:.1f} |"
        )
    lines += ["", "Background, idle (a second, load or not):", ""]
    lines += ["| config | checkout | process | tasks | round trips | bytes to / from Redis |"]
    lines += ["|---|---|---|---:|---:|---:|"]
    seen = set()
    for f in results:
        if f.skipped or (f.config, f.checkout) in seen:
            continue
        seen.add((f.config, f.checkout))
        for role, c in f.background_per_s.items():
            lines.append(
                f"| {f.config} | {f.checkout} | {role} | {c['tasks']:.1f} "
                f"| {c['redis_round_trips']:.1f} "
                f"| {c['redis_bytes_written']:,.0f} / {c['redis_bytes_read']:,.0f} |"
            )
    return "\n".join(lines)


def command_table(results: list[Figures], mode: str) -> str:
    """Redis commands executed per request in one mode, by command, side by side."""
    shown = [f for f in results if f.mode == mode and not f.skipped]
    names = sorted({name for f in shown for name in f.redis_by_command})
    head = " | ".join(f"{f.checkout} {f.config}" for f in shown)
    lines = [f"Redis commands per request, {MODES[mode][0]}:", ""]
    lines += [f"| command | {head} |", "|---|" + "---:|" * len(shown)]
    for name in names:
        cells = " | ".join(f"{f.redis_by_command.get(name, 0):.2f}" for f in shown)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def shape_lines(results: list[Figures]) -> list[str]:
    """Each process's commonest round trips a request: what its round trips are."""
    lines = ["Round trips per request by what they send (the commonest):", ""]
    for f in results:
        if f.skipped:
            continue
        for role, shapes in f.shapes.items():
            listed = "; ".join(f"{n:.2f} × `{shape}`" for shape, n in shapes.items() if n >= 0.01)
            lines.append(f"- {f.config}, {MODES[f.mode][0]}, {f.checkout}, {role}: {listed}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.configs = args.configs.split(",")
    args.modes = args.modes.split(",")
    results: list[list[Figures]] = []

    async def body(plan: dict[str, str | None]) -> None:
        results.append(await run(args, plan))

    run_pinned(body, no_pin=args.no_pin)
    figures = results[0]
    print()
    print(markdown(figures, args.requests))
    for mode in args.modes:
        print()
        print(command_table(figures, mode))
    print()
    print("\n".join(shape_lines(figures)))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
