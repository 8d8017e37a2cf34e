"""Benchmark Switchboard against LiteLLM's proxy and against the upstream itself.

    python -m benchmarks.run                  # the full run (~10 minutes), installs LiteLLM
    python -m benchmarks.run --quick          # a shorter pass over the same scenarios
    python -m benchmarks.run --quick --skip-litellm

Starts the fake OpenAI upstream (`python -m workers.testing`), then for each target (direct,
Switchboard 1+1 and 2+2, LiteLLM 1 and 2 workers, Portkey's gateway as one Node.js process when
Node.js is present) runs non-stream and stream load at each
concurrency, and on Switchboard 1+1 a soak of concurrent streams and a queued burst. Writes
results.json, RESULTS.md and latency plots into --out, and (unless --quick) RESULTS.md and
the plots into benchmarks/.

Pinning (2+ cores): this client and the upstream share CPU 0; single-process-count gateways
(Switchboard 1+1 with its Redis, LiteLLM 1 worker, Portkey) get CPU 1 to themselves, so
their figures are "one core". The 2-process layouts run unpinned across every core, client included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

from benchmarks import gateways, realistic, report, scenarios
from benchmarks.gateways import Target
from benchmarks.procs import MIB, descendants, pinned, rss_bytes, wait_http_ready

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short points, smaller soak/burst")
    parser.add_argument("--skip-litellm", action="store_true", help="no LiteLLM proxy target")
    parser.add_argument(
        "--skip-portkey", action="store_true", help="no Portkey gateway target (needs Node.js)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--results-md",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also write benchmarks/RESULTS.md and its plots (default: unless --quick)",
    )
    parser.add_argument("--duration", type=float, help="measured seconds per point")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each point")
    parser.add_argument("--concurrency", help="comma-separated, e.g. 1,8,64,256")
    parser.add_argument("--layouts", default=None, help="Switchboard layouts, e.g. 1x1,2x2")
    parser.add_argument("--litellm-workers", default="1,2")
    parser.add_argument("--soak-streams", type=int)
    parser.add_argument("--burst-requests", type=int)
    parser.add_argument("--burst-connections", type=int)
    parser.add_argument(
        "--everything-on",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also Switchboard 1+1 with a database key, the ledger and an otel callback, "
        "and the same without the callback",
    )
    parser.add_argument("--settle-s", type=float, help="idle seconds before the burst's last RSS")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults: dict[str, Any] = {
        "duration": 2.0 if quick else 6.0,
        "warmup": 0.5 if quick else 1.0,
        "concurrency": "1,8,64" if quick else "1,8,64,256",
        "layouts": "1x1" if quick else "1x1,2x2",
        "soak_streams": 300 if quick else 2000,
        "burst_requests": 2000 if quick else 20_000,
        "burst_connections": 500 if quick else 5000,
        "settle_s": 2.0 if quick else 60.0,
    }
    if args.results_md is None:
        args.results_md = not quick
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_plan(no_pin: bool) -> dict[str, str | None]:
    """Which CPUs the client+upstream and a one-core gateway use (None: unpinned)."""
    cpus = sorted(os.sched_getaffinity(0))
    if no_pin or len(cpus) < 2:
        return {"client": None, "gateway": None}
    return {"client": str(cpus[0]), "gateway": str(cpus[1])}


def pin_client(no_pin: bool) -> dict[str, str | None]:
    """Plan the CPUs and pin this process (the client) to its one. The plan is made before
    the pin and must be passed on: made again after it, it would see one CPU."""
    plan = cpu_plan(no_pin)
    if plan["client"] is not None:
        os.sched_setaffinity(0, {int(plan["client"])})
    return plan


def run_pinned(
    main: Callable[[dict[str, str | None]], Coroutine[Any, Any, None]], *, no_pin: bool
) -> None:
    """A benchmark's `main(plan)` on the fake upstream's event loop, this process pinned."""
    plan = pin_client(no_pin)
    from workers.testing.__main__ import loop_factory

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main(plan))


@contextlib.contextmanager
def upstream(out: Path, cpus: str | None) -> Iterator[int]:
    argv = [sys.executable, "-m", "workers.testing", "--host", "127.0.0.1", "--port", "0"]
    process = subprocess.Popen(pinned(argv, cpus), stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on " not in line:
            raise RuntimeError(f"the fake upstream did not start: {line!r}")
        yield int(line.rsplit(":", 1)[1])
    finally:
        process.terminate()
        process.wait(10)


async def measure(
    target: Target, args: argparse.Namespace, log: Callable[[str], None]
) -> dict[str, Any]:
    """Every load point, plus the soak and burst on Switchboard's one-core layout."""
    service = target.service
    if service is not None:
        service.start()
    try:
        if service is not None:
            await wait_http_ready(target.port, target.ready_path, target.ready_timeout_s, service)
        if gateways.has_database_key(target.name):
            target.api_key = await realistic.database_key(target.port)
        points: list[dict[str, Any]] = []
        crashed = None
        try:
            for stream in (False, True):
                for concurrency in args.concurrency_list:
                    point = await scenarios.load(
                        target,
                        stream=stream,
                        concurrency=concurrency,
                        duration_s=args.duration,
                        warmup_s=args.warmup,
                        drain_s=15.0,
                        api_key=target.api_key,
                    )
                    log(report.point_line(point))
                    points.append(point)
        except OSError as exc:
            # A peer that dies (LiteLLM 1.106.12 has segfaulted in libpython under streams)
            # costs its remaining points, not the run; Switchboard dying fails it.
            if target.name.startswith("switchboard"):
                raise
            crashed = f"{type(exc).__name__}: {exc}"
            log(f"  {target.label} stopped answering ({crashed}); its other points are missing")
        result: dict[str, Any] = {"target": target.name, "label": target.label, "points": points}
        if crashed is not None:
            result["crashed"] = crashed
        result.update(processes=target.processes, cpus=target.cpus)
        if target.name == "switchboard-1x1":
            result["soak"] = await soak(target, args, log)
            result["burst"] = await burst(target, args, log)
        return result
    finally:
        if service is not None:
            service.stop()


async def burst(
    target: Target, args: argparse.Namespace, log: Callable[[str], None]
) -> dict[str, Any]:
    """The queued burst, with the tree's RSS (Redis included) idle, right after, and settled."""
    assert target.service is not None
    await asyncio.sleep(args.settle_s / 4)  # what the soak left behind drains first
    idle = tree_rss_mib(target.service.pid)
    result = await scenarios.many(
        target,
        stream=False,
        requests=args.burst_requests,
        connections=min(args.burst_connections, args.burst_requests),
        timeout_s=600,
    )
    result["rss_idle_mib"] = idle
    result["rss_after_mib"] = tree_rss_mib(target.service.pid)
    await asyncio.sleep(args.settle_s)
    result["rss_settled_mib"] = tree_rss_mib(target.service.pid)
    result["settle_s"] = args.settle_s
    log(report.many_line("burst", result))
    log(
        f"  tree RSS idle {result['rss_idle_mib']:.0f} MiB, after {result['rss_after_mib']:.0f}, "
        f"{args.settle_s:g} s later {result['rss_settled_mib']:.0f}"
    )
    return result


def tree_rss_mib(root: int) -> float:
    return rss_bytes(descendants(root)) / MIB


async def soak(
    target: Target, args: argparse.Namespace, log: Callable[[str], None]
) -> dict[str, Any]:
    text = await scenarios.expected_stream_text(args.direct_target)
    result = await scenarios.many(
        target,
        stream=True,
        requests=args.soak_streams,
        connections=args.soak_streams,
        timeout_s=300,
        expected_text=text,
    )
    log(report.many_line("soak", result))
    return result


def versions(litellm_version: str | None, portkey_version: str | None) -> dict[str, Any]:
    import aiohttp
    import redis

    return {
        "python": platform.python_version(),
        "switchboard_commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip(),
        "aiohttp": aiohttp.__version__,
        "redis_py": redis.__version__,
        "litellm": litellm_version,
        "portkey": portkey_version,
    }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }


def build_targets(
    args: argparse.Namespace, plan: dict[str, str | None], upstream_port: int
) -> list[Target]:
    config = gateways.write_config(args.out / "config.yaml", f"http://127.0.0.1:{upstream_port}")
    logs = args.out / "logs"
    targets = [args.direct_target]
    for layout in args.layouts.split(","):
        front_doors, workers = (int(n) for n in layout.split("x"))
        cpus = plan["gateway"] if front_doors + workers == 2 else None
        targets.append(
            gateways.switchboard(
                free_port(), config, logs, front_doors=front_doors, workers=workers, cpus=cpus
            )
        )
    if args.everything_on:
        variants = {
            gateways.EVERYTHING_ON: args.otlp_sink.url,
            gateways.ON_WITHOUT_CALLBACKS: None,
        }
        for suffix, otlp_url in variants.items():
            on = realistic.everything_on(
                config, args.out / f"config{suffix}.yaml", args.out / f"data{suffix}", otlp_url
            )
            targets.append(
                gateways.switchboard(
                    free_port(),
                    on,
                    logs,
                    front_doors=1,
                    workers=1,
                    cpus=plan["gateway"],
                    suffix=suffix,
                )
            )
    if not args.skip_litellm:
        for workers in (int(n) for n in args.litellm_workers.split(",")):
            cpus = plan["gateway"] if workers == 1 else None
            targets.append(gateways.litellm(free_port(), config, logs, workers=workers, cpus=cpus))
    if args.portkey_version is not None:
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        targets.append(gateways.portkey(free_port(), upstream_url, logs, cpus=plan["gateway"]))
    return targets


async def run_all(args: argparse.Namespace, targets: list[Target]) -> list[dict[str, Any]]:
    results = []
    async with args.otlp_sink as sink:
        for target in targets:
            print(f"== {target.label}", flush=True)
            exports = sink.exports
            result = await measure(target, args, lambda line: print(line, flush=True))
            result["otlp_exports"] = sink.exports - exports
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.concurrency_list = [int(c) for c in args.concurrency.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    litellm_version = None if args.skip_litellm else gateways.ensure_litellm()
    args.portkey_version = None if args.skip_portkey else gateways.ensure_portkey()
    args.otlp_sink = realistic.OtlpSink(free_port())
    plan = pin_client(args.no_pin)
    started = time.time()
    info = {
        "machine": machine(),
        "versions": versions(litellm_version, args.portkey_version),
        "pinning": plan,
    }
    with upstream(args.out, plan["client"]) as upstream_port:
        args.direct_target = gateways.direct(upstream_port)
        targets = build_targets(args, plan, upstream_port)
        from workers.testing.__main__ import loop_factory

        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            results = runner.run(run_all(args, targets))
    info["machine"]["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
    document = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "runtime_s": round(time.time() - started, 1),
        "settings": {
            "quick": args.quick,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "concurrency": args.concurrency_list,
            "stream_chunks": gateways.STREAM_CHUNKS,
            "soak_streams": args.soak_streams,
            "burst_requests": args.burst_requests,
            "burst_connections": args.burst_connections,
            "settle_s": args.settle_s,
        },
        **info,
        "targets": results,
    }
    document["summary"] = report.summarize(document)
    (args.out / "results.json").write_text(json.dumps(document, indent=1))
    markdown = report.markdown(document)
    (args.out / "RESULTS.md").write_text(markdown)
    if args.results_md:
        (HERE / "RESULTS.md").write_text(markdown)
    if not args.no_plots:
        for path in report.plots(document, args.out):
            if args.results_md:
                shutil.copy(path, HERE / path.name)
    print(report.table(document))
    print(f"\nwrote {args.out / 'results.json'} and RESULTS.md in {document['runtime_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
