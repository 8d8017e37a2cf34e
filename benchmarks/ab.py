"""Two checkouts of Switchboard side by side in one run: the same fake upstream, the same
load, each gateway (`up`: 1 front door + 1 worker + its Redis) pinned to the same core, the
rounds interleaved A, B, A, B so that a change in the machine's load hits both alike.

    python -m benchmarks.ab /path/to/base /path/to/head --rounds 3 --duration 5

Each checkout runs from its own `.venv` (its own installed code), or without one from this
venv with the checkout first on PYTHONPATH; `PATH,NAME=VALUE` gives it environment (e.g.
`DATABASE_URL=` for no database). For each round and mode it prints the CPU per request of
each process (from /proc: on a shared machine this moves far less than requests per second),
the Redis commands per request, requests per second and the p50/p99 latency, with the load
average. `--py-spy DIR` keeps each window's stacks of the front door and the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import gateways
from benchmarks.loadgen import Client, build_request
from benchmarks.procs import Service, cpu_s, pinned, wait_http_ready
from benchmarks.profile import (
    redis_counters,
    redis_url_of,
    render_profile,
    roles,
    start_py_spy,
)
from benchmarks.run import free_port, run_pinned, upstream

MODES = (("non-stream c=1", False, 1), ("non-stream c=64", False, 64), ("stream c=64", True, 64))


@dataclass
class Figures:
    rps: list[float] = field(default_factory=list)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    commands: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "checkouts",
        nargs="+",
        help="checkouts to compare, each PATH or PATH,NAME=VALUE,... (environment for it)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per mode")
    parser.add_argument("--modes", default="all", help="comma list of 'c1', 'c64', 'stream'")
    parser.add_argument("--py-spy", type=Path, help="keep py-spy's stacks of each window here")
    parser.add_argument(
        "--batch-workers", type=int, help="`up --batch-workers N` where a checkout takes it"
    )
    return parser.parse_args(argv)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def service_for(
    spec: str,
    config: Path,
    logs: Path,
    cpus: str | None,
    *,
    path_first: Path | None = None,
    env_extra: Mapping[str, str] | None = None,
    batch_workers: int | None = None,
) -> tuple[Service, int]:
    """`spec`: PATH, or PATH,NAME=VALUE,... with environment variables for that gateway.
    `path_first` goes before everything on its PYTHONPATH; `batch_workers` is passed to
    `up` where the checkout has `--batch-workers` (issue #20; older ones have none)."""
    path, *assignments = spec.split(",")
    checkout = Path(path).resolve()
    port = free_port()
    # Its own venv when it has one; else this one's packages with its code first on the path.
    python = checkout / ".venv" / "bin" / "python"
    code_path = [] if python.exists() else [str(checkout)]
    if not python.exists():
        python = Path(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env["PYTHONUNBUFFERED"] = "1"
    # Not the current folder first on sys.path: each checkout imports its own installed code.
    env["PYTHONSAFEPATH"] = "1"
    python_path = ([str(path_first)] if path_first is not None else []) + code_path
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(python_path)
    env.update(item.split("=", 1) for item in assignments)  # type: ignore[misc]
    env.update(env_extra or {})
    name = ",".join([checkout.name, *assignments])
    argv = [str(python), "-m", "broker.cli", "--log-level", "WARNING", "up"]
    argv += ["--config", str(config), "--port", str(port), "--workers", "1", "--front-doors", "1"]
    options = up_options(str(python), env)
    if "--data-dir" in options:
        # A data directory each: in a shared one the older checkout meets the newer's
        # database schema (and both count each other's keys and spend).
        argv += ["--data-dir", str(logs / ("data-" + re.sub(r"[^\w.=-]", "_", name)))]
    if batch_workers is not None and "--batch-workers" in options:
        argv += ["--batch-workers", str(batch_workers)]
    service = Service(name, pinned(argv, cpus), env=env, log_path=logs / f"{name}.log")
    return service, port


def up_options(python: str, env: Mapping[str, str]) -> set[str]:
    """The options a checkout's `switchboard up` takes, from its --help (checkouts older
    than a flag refuse it)."""
    done = subprocess.run(
        [python, "-m", "broker.cli", "up", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(re.findall(r"--[a-z][a-z-]+", done.stdout))


async def measure(
    service: Service,
    port: int,
    model: str,
    *,
    stream: bool,
    concurrency: int,
    duration_s: float,
    spy: Path | None = None,
    spy_cpus: str | None = None,
) -> Window:
    """Requests done, CPU seconds by role, Redis commands, latencies of the window; with
    `spy`, py-spy's collapsed stacks of the front door and the worker over the window."""
    by_role = roles(service.pid)
    url = redis_url_of(by_role["worker"][0])
    request = build_request(port, model, stream=stream, api_key=gateways.MASTER_KEY)
    client = Client(port, request)
    conns = await client.open(concurrency)
    client.start(conns)
    await asyncio.sleep(1.0)
    before_cpu = {role: cpu_s(pids) for role, pids in by_role.items()}
    before_redis = await asyncio.to_thread(redis_counters, url)
    samplers = []
    if spy is not None:
        spy.parent.mkdir(parents=True, exist_ok=True)
        for role in ("front door", "worker"):
            out = spy.with_name(f"{spy.name}-{role.replace(' ', '-')}.txt")
            samplers.append(start_py_spy(by_role[role][0], out, duration_s, spy_cpus))
    client.is_measuring = True
    await asyncio.sleep(duration_s)
    client.is_measuring = False
    used = {role: cpu_s(pids) - before_cpu[role] for role, pids in by_role.items()}
    after_redis = await asyncio.to_thread(redis_counters, url)
    await client.stop(conns, 15.0)
    for sampler in samplers:
        await asyncio.to_thread(sampler.wait, 60)
    if client.sample.errors:
        raise RuntimeError(f"{service.name}: requests failed: {dict(client.sample.errors)}")
    done = len(client.sample.latencies_s)
    diff = after_redis.copy()
    diff.subtract(before_redis)
    # The two INFO calls that read the counters are not the requests'.
    commands = sum(n for name, n in diff.items() if not name.startswith("(") and name != "info")
    return Window(done, used, commands, client.sample.latencies_s)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Window:
    """One gateway's measured window."""

    done: int
    cpu_s: dict[str, float]  # by role
    commands: float
    latencies_s: list[float]

    def line(self, label: str, name: str, duration_s: float) -> str:
        cpu = " ".join(f"{r} {s * 1e6 / self.done:.0f}" for r, s in self.cpu_s.items())
        return (
            f"  {label:16} {name:24} {self.done / duration_s:7.0f} rps  cpu µs/req: {cpu}, "
            f"all {sum(self.cpu_s.values()) * 1e6 / self.done:.0f}  "
            f"redis cmds/req {self.commands / self.done:.1f}  "
            f"p50 {pct(self.latencies_s, 0.5) * 1e3:.2f} ms "
            f"p99 {pct(self.latencies_s, 0.99) * 1e3:.2f} ms"
        )

    def add_to(self, figures: Figures, duration_s: float) -> None:
        figures.rps.append(self.done / duration_s)
        for role, seconds in self.cpu_s.items():
            figures.cpu_us.setdefault(role, []).append(seconds * 1e6 / self.done)
        figures.commands.append(self.commands / self.done)
        figures.p50_ms.append(pct(self.latencies_s, 0.5) * 1e3)
        figures.p99_ms.append(pct(self.latencies_s, 0.99) * 1e3)


HEADER = (
    "| mode | checkout | rps | front door µs | worker µs | redis µs | all µs | redis cmds "
    "| p50 ms | p99 ms |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def table_row(label: str, name: str, f: Figures) -> str:
    med = statistics.median
    cpu = {role: med(values) for role, values in f.cpu_us.items()}
    return (
        f"| {label} | {name} | {med(f.rps):,.0f} | {cpu['front door']:.0f} "
        f"| {cpu['worker']:.0f} | {cpu['redis']:.0f} | {sum(cpu.values()):.0f} "
        f"| {med(f.commands):.1f} | {med(f.p50_ms):.2f} | {med(f.p99_ms):.2f} |"
    )


async def rounds(
    args: argparse.Namespace, services: list[tuple[Service, int]], client_cpus: str | None
) -> dict[tuple[str, str], Figures]:
    wanted = {"c1": MODES[0], "c64": MODES[1], "stream": MODES[2]}
    modes = list(MODES) if args.modes == "all" else [wanted[m] for m in args.modes.split(",")]
    results: dict[tuple[str, str], Figures] = {}
    for round_no in range(args.rounds):
        print(f"round {round_no + 1}, load average {load_average()}", flush=True)
        for label, stream, concurrency in modes:
            for service, port in services:
                spy = None
                if args.py_spy is not None:
                    spy = args.py_spy / f"{label.replace(' ', '_')}-{service.name}-r{round_no}"
                window = await measure(
                    service,
                    port,
                    "bench-stream" if stream else "bench",
                    stream=stream,
                    concurrency=concurrency,
                    duration_s=args.duration,
                    spy=spy,
                    spy_cpus=client_cpus,
                )
                window.add_to(results.setdefault((label, service.name), Figures()), args.duration)
                print(window.line(label, service.name, args.duration), flush=True)
    return results


async def run(args: argparse.Namespace, plan: dict[str, str | None]) -> None:
    """`plan` is worked out before this process is pinned (run_pinned): worked out after,
    it would see one CPU and leave the gateways unpinned."""
    with tempfile.TemporaryDirectory() as tmp, upstream(Path(tmp), plan["client"]) as up_port:
        config = gateways.write_config(Path(tmp, "config.yaml"), f"http://127.0.0.1:{up_port}")
        services = [
            service_for(c, config, Path(tmp), plan["gateway"], batch_workers=args.batch_workers)
            for c in args.checkouts
        ]
        try:
            for service, port in services:
                service.start()
                await wait_http_ready(port, "/health/readiness", 60, service)
            results = await rounds(args, services, plan["client"])
        finally:
            for service, _ in services:
                service.stop()
    print(f"\nmedians over {args.rounds} rounds, load average {load_average()}")
    print(HEADER)
    for (label, name), figures in results.items():
        print(table_row(label, name, figures))
    if args.py_spy is not None:
        for path in sorted(args.py_spy.glob("*.txt")):
            print("\n" + "\n".join(render_profile(path.stem, path, 15)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_pinned(lambda plan: run(args, plan), no_pin=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
