"""The batch lane's benchmark (issue #20): how fast a batch drains, and what it costs the
interactive traffic running beside it.

    python -m benchmarks.batches [--lines 20000] [--upstream-latency 0.02] [--out DIR]

Starts the fake upstream and `switchboard up` (1 front door, 1 worker, embedded Redis),
then measures:
1. the `--lines` requests sent directly, `--direct-concurrency` at a time (drain rate);
2. `--rounds` times, side by side: interactive alone (c=8 closed-loop chat requests for
   `--interactive-s` seconds), then the same lines as one batch (upload, create, poll to
   the end) with the c=8 interactive load beside it. Alternating the two spreads the
   noise of a shared machine over both; the latencies of all rounds are pooled.

Each phase also records each process's CPU seconds, the workers' queue wait per lane and
the load average (benchmarks/batch_probes.py); `--py-spy` profiles the front door and the
worker during the first batch. The issue's bar: the batch adds at most 20% to interactive
p99 (on the 2-core machine). Results go to `<out>/batches.json` and are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks.batch_probes import Phase, process_roles, profiled
from benchmarks.procs import Service, wait_http_ready
from benchmarks.run import upstream
from tests.broker.processes import free_port

KEY = "sk-bench-batches-0123456789"
HELLO = [{"role": "user", "content": "hi"}]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batches", description=__doc__)
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--upstream-latency", type=float, default=0.02, help="seconds")
    parser.add_argument("--interactive-concurrency", type=int, default=8)
    parser.add_argument("--interactive-s", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2, help="alone/batch pairs")
    parser.add_argument("--py-spy", action="store_true", help="profile the first batch")
    parser.add_argument("--direct-concurrency", type=int, default=64)
    parser.add_argument("--worker-concurrency", type=int, default=256)
    parser.add_argument("--max-share", type=float, default=None, help="batches.max_share")
    parser.add_argument("--window", type=int, default=None, help="batches.window")
    parser.add_argument("--busy-lag-ms", type=float, default=None, help="batches.busy_loop_lag_ms")
    parser.add_argument(
        "--modes",
        default="beside,idle",
        help="where batches run, compared side by side: `beside` (up --batch-workers 0: the "
        "front door and the worker, paced), `nice` (a batch process at nice 19), `idle` "
        "(the same, under SCHED_IDLE too: up's default)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    return parser.parse_args(argv)


def write_config(directory: Path, upstream_port: int, args: argparse.Namespace, mode: str) -> Path:
    model = f"openai/gpt-4o-mini~latency={args.upstream_latency}"
    config = {
        "model_list": [
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": model,
                    "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                    "api_key": "sk-bench",
                },
            }
        ],
        "general_settings": {"master_key": KEY},
        "switchboard_settings": {
            "worker_concurrency": args.worker_concurrency,
            "max_queue_depth": 100_000,
            "files": {"storage_dir": str(directory / "files")},
        },
    }
    batches = {
        "max_share": args.max_share,
        "window": args.window,
        "busy_loop_lag_ms": args.busy_lag_ms,
        **MODE_SETTINGS[mode],
    }
    if any(value is not None for value in batches.values()):
        config["switchboard_settings"]["batches"] = {  # type: ignore[index]
            key: value for key, value in batches.items() if value is not None
        }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "count": 0}
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": p99 * 1000,
        "count": len(ordered),
    }


async def chat(http: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    body = {"model": "bench", "messages": HELLO}
    async with http.post(url + "/v1/chat/completions", json=body) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"interactive request failed: {response.status}")
    return time.perf_counter() - started


async def interactive(
    http: aiohttp.ClientSession, url: str, concurrency: int, until: asyncio.Event
) -> list[float]:
    """Closed-loop requests, `concurrency` at a time, until `until` is set."""
    latencies: list[float] = []

    async def loop() -> None:
        while not until.is_set():
            latencies.append(await chat(http, url))

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies


async def timed_interactive(http: aiohttp.ClientSession, url: str, args: Any) -> list[float]:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(args.interactive_s, stop.set)
    return await interactive(http, url, args.interactive_concurrency, stop)


async def direct(http: aiohttp.ClientSession, url: str, args: Any) -> float:
    """Seconds to send `--lines` requests, `--direct-concurrency` at a time."""
    gate = asyncio.Semaphore(args.direct_concurrency)

    async def one() -> None:
        async with gate:
            await chat(http, url)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(args.lines)))
    return time.perf_counter() - started


def batch_input(lines: int) -> bytes:
    return b"".join(
        json.dumps(
            {
                "custom_id": f"line-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "bench", "messages": HELLO},
            }
        ).encode()
        + b"\n"
        for i in range(lines)
    )


async def batch(http: aiohttp.ClientSession, url: str, args: Any) -> tuple[float, list[float]]:
    """Seconds from create to completed, and the interactive latencies meanwhile."""
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field("file", batch_input(args.lines), filename="bench.jsonl")
    async with http.post(url + "/v1/files", data=form) as response:
        file_id = (await response.json())["id"]
    stop = asyncio.Event()
    load = asyncio.create_task(interactive(http, url, args.interactive_concurrency, stop))
    started = time.perf_counter()
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions"}
    async with http.post(url + "/v1/batches", json=body) as response:
        batch_id = (await response.json())["id"]
    while True:
        await asyncio.sleep(0.5)
        async with http.get(f"{url}/v1/batches/{batch_id}") as response:
            state = await response.json()
        if state["status"] in ("completed", "failed", "expired", "cancelled"):
            break
    elapsed = time.perf_counter() - started
    stop.set()
    latencies = await load
    counts = state["request_counts"]
    if state["status"] != "completed" or counts["completed"] != args.lines:
        raise RuntimeError(f"the batch ended {state['status']} with {counts}")
    await check_output(http, url, state["output_file_id"], args.lines)
    return elapsed, latencies


async def check_output(http: aiohttp.ClientSession, url: str, file_id: str, lines: int) -> None:
    """Every custom_id exactly once in the output file."""
    async with http.get(f"{url}/v1/files/{file_id}/content") as response:
        content = await response.read()
    seen = [json.loads(line)["custom_id"] for line in content.splitlines()]
    if len(seen) != lines or set(seen) != {f"line-{i}" for i in range(lines)}:
        raise RuntimeError(f"the output has {len(seen)} lines, {len(set(seen))} distinct")


# Where batches run in each mode: `beside` the interactive requests in the front door and
# the worker (paced); in a batch process at nice 19 (`nice`); the same under SCHED_IDLE too
# (`idle`, the default of `up`).
BATCH_WORKERS = {"beside": 0, "nice": 1, "idle": 1}
MODE_SETTINGS: dict[str, dict[str, Any]] = {"beside": {}, "nice": {"sched_idle": False}, "idle": {}}


class Probe:
    """A service's processes and metrics ports, read around each phase."""

    def __init__(
        self, service_pid: int, others: list[int], metrics_port: int, batch_workers: int
    ) -> None:
        self.by_role = process_roles(service_pid, others)
        # `up --metrics-port`: the front door at the port, the worker at the next, then the
        # batch workers.
        self.metrics_urls = [
            f"http://127.0.0.1:{metrics_port + 1 + n}/metrics" for n in range(1 + batch_workers)
        ]

    def phase(self) -> Phase:
        return Phase(self.by_role, self.metrics_urls)


class Mode:
    """One service under test: where its batches run, its URL and its probe."""

    def __init__(self, name: str, url: str, probe: Probe) -> None:
        self.name, self.url, self.probe = name, url, probe
        self.rounds: list[dict[str, Any]] = []
        self.alone: list[float] = []
        self.during: list[float] = []


async def one_round(http: aiohttp.ClientSession, mode: Mode, args: Any, spy: Path | None) -> None:
    """Interactive alone, then the batch with interactive beside it, on `mode`'s service."""
    phase = mode.probe.phase()
    await phase.start(http)
    alone = await timed_interactive(http, mode.url, args)
    alone_phase = await phase.stop(http, args.interactive_s)
    phase = mode.probe.phase()
    await phase.start(http)
    profiling = profiled(mode.probe.by_role, spy, 20.0) if spy else contextlib.nullcontext()
    with profiling:
        batch_s, during = await batch(http, mode.url, args)
    batch_phase = await phase.stop(http, batch_s)
    mode.rounds.append(
        {
            "alone": {**percentiles(alone), **alone_phase},
            "batch": {**percentiles(during), **batch_phase},
            "batch_lines_per_s": args.lines / batch_s,
        }
    )
    mode.alone += alone
    mode.during += during


def summary(mode: Mode) -> dict[str, Any]:
    pooled_alone, pooled_during = percentiles(mode.alone), percentiles(mode.during)
    return {
        "interactive_alone": pooled_alone,
        "interactive_during_batch": pooled_during,
        "p99_added_pct": (pooled_during["p99_ms"] / pooled_alone["p99_ms"] - 1) * 100,
        "batch": {
            "lines_per_s": statistics.median(r["batch_lines_per_s"] for r in mode.rounds),
        },
        "rounds": mode.rounds,
    }


async def measure(modes: list[Mode], args: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    connector = aiohttp.TCPConnector(limit=args.direct_concurrency + 16)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
        warm = argparse.Namespace(**{**vars(args), "interactive_s": 2})
        for mode in modes:
            await timed_interactive(http, mode.url, warm)
        phase = modes[0].probe.phase()
        await phase.start(http)
        direct_s = await direct(http, modes[0].url, args)
        direct_phase = await phase.stop(http, direct_s)
        # Each round visits every mode in turn: the machine's noise falls on all of them.
        for number in range(args.rounds):
            for mode in modes:
                spy = args.out if args.py_spy and number == 0 else None
                await one_round(http, mode, args, spy)
    return {
        "lines": args.lines,
        "upstream_latency_s": args.upstream_latency,
        "direct": {"lines_per_s": args.lines / direct_s, **direct_phase},
        "modes": {mode.name: summary(mode) for mode in modes},
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"| {result['lines']} lines, upstream {result['upstream_latency_s'] * 1000:.0f} ms "
        "| batch lines/s | interactive p50 alone / beside (ms) "
        "| interactive p99 alone / beside (ms) |",
        "|---|---|---|---|",
        f"| sent directly | {result['direct']['lines_per_s']:.0f} | | |",
    ]
    for name, found in result["modes"].items():
        alone, during = found["interactive_alone"], found["interactive_during_batch"]
        lines.append(
            f"| batches {name} | {found['batch']['lines_per_s']:.0f} "
            f"| {alone['p50_ms']:.1f} / {during['p50_ms']:.1f} "
            f"| {alone['p99_ms']:.1f} / {during['p99_ms']:.1f} ({found['p99_added_pct']:+.0f}%) |"
        )
    lines += [
        "",
        "| mode, round, phase | p50 / p99 (ms) | queue wait p99 (ms): lanes | CPU s by process "
        "| load average |",
        "|---|---|---|---|---|",
    ]
    phases = [("direct", result["direct"] | {"p50_ms": 0.0, "p99_ms": 0.0})]
    for mode, found in result["modes"].items():
        for number, rounds in enumerate(found["rounds"], 1):
            phases += [(f"{mode} {number} {name}", rounds[name]) for name in ("alone", "batch")]
    for name, phase in phases:
        waits = ", ".join(
            f"{lane} {wait['p99_ms']:.0f}" for lane, wait in sorted(phase["queue_wait"].items())
        )
        cpu = ", ".join(f"{role} {used:.1f}" for role, used in phase["cpu_s"].items())
        load = "-".join(f"{value:.1f}" for value in phase["load_average"])
        lines.append(
            f"| {name} ({phase['seconds']:.0f} s) "
            f"| {phase['p50_ms']:.1f} / {phase['p99_ms']:.1f} | {waits} | {cpu} | {load} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    names = [name.strip() for name in args.modes.split(",") if name.strip()]
    with contextlib.ExitStack() as stack:
        upstream_port = stack.enter_context(upstream(args.out, None))
        started: list[tuple[str, int, int, Service]] = []
        for name in names:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            config = write_config(directory, upstream_port, args, name)
            port, metrics_port = free_port(), free_port_run(3)
            argv = [sys.executable, "-m", "broker.cli", "--log-level", "WARNING", "up"]
            argv += ["--config", str(config), "--port", str(port), "--data-dir", str(directory)]
            argv += ["--metrics-port", str(metrics_port)]
            argv += ["--batch-workers", str(BATCH_WORKERS[name])]
            service = Service(
                f"switchboard-batches-{name}", argv, log_path=args.out / f"{name}.log"
            )
            service.start()
            stack.callback(service.stop)
            started.append((name, port, metrics_port, service))
        for _name, port, _metrics, service in started:
            await wait_http_ready(port, "/health/readiness", 60, service)
        pids = [service.pid for *_, service in started]
        modes = [
            Mode(
                name,
                f"http://127.0.0.1:{port}",
                Probe(
                    service.pid, [p for p in pids if p != service.pid], metrics, BATCH_WORKERS[name]
                ),
            )
            for name, port, metrics, service in started
        ]
        return await measure(modes, args)


def free_port_run(count: int) -> int:
    """The first of `count` free consecutive ports (each process of `up` takes one)."""
    for _ in range(100):
        first = free_port()
        if all(port_is_free(first + n) for n in range(1, count)):
            return first
    raise RuntimeError("no run of free ports")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    (args.out / "batches.json").write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
