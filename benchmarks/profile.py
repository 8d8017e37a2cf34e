"""Where a request's CPU goes: Switchboard `up` (1 front door + 1 worker + its Redis, pinned
to one core) under closed-loop load, each process's CPU per request read from /proc, and, with
py-spy installed (`pip install -e '.[bench]'`), a sampled profile of the front door and the
worker grouped by the library each sample's innermost frame is in.

    python -m benchmarks.profile                   # c=64, non-stream then stream, 10 s each
    python -m benchmarks.profile --duration 5 --concurrency 8 --top 20
    python -m benchmarks.profile --everything-on --concurrency 1   # issue #22's "on"

docs/performance.md reads its figures from this.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from benchmarks import gateways, realistic
from benchmarks.loadgen import Client, build_request
from benchmarks.procs import (
    cpu_s,
    descendants,
    is_redis,
    pinned,
    thread_cpu_s,
    wait_http_ready,
)
from benchmarks.run import free_port, run_pinned, upstream

# A little over the front door's span-record flush (`otel.export_interval_s`'s default).
FRONT_FLUSH_S = 1.2

# The innermost frame's file decides where a sample's CPU went; first match wins.
AREAS = (
    ("switchboard: front door", "/broker/"),
    ("switchboard: worker", "/workers/"),
    ("aiohttp (HTTP server and client)", "/aiohttp/"),
    ("redis-py (commands, pipelines, RESP)", "/redis/"),
    ("msgspec / orjson / json", "msgspec"),
    ("msgspec / orjson / json", "orjson"),
    ("msgspec / orjson / json", "/json/"),
    ("yarl / multidict (URLs, headers)", "/yarl/"),
    ("yarl / multidict (URLs, headers)", "/multidict/"),
    ("asyncio / uvloop (event loop)", "/asyncio/"),
    ("asyncio / uvloop (event loop)", "uvloop"),
    ("prometheus-client", "prometheus_client"),
    ("logging", "/logging/"),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per mode")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--top", type=int, default=12, help="functions listed per process")
    parser.add_argument("--no-py-spy", action="store_true", help="only the /proc CPU split")
    parser.add_argument("--keep", type=Path, help="keep py-spy's collapsed stacks in this folder")
    parser.add_argument(
        "--everything-on",
        action="store_true",
        help="issue #22's realistic configuration: a database key, the ledger, otel",
    )
    parser.add_argument(
        "--without-otel",
        action="store_true",
        help="with --everything-on: all of it but the otel callback (issue #19's baseline)",
    )
    parser.add_argument(
        "--sample-rate",
        type=float,
        default=1.0,
        help="with --everything-on: the share of requests the otel callback traces",
    )
    parser.add_argument(
        "--callback-workers",
        type=int,
        default=None,
        help="`up --callback-workers` (default: up's, one callbacks process; 0: the workers "
        "deliver)",
    )
    return parser.parse_args(argv)


def roles(root: int) -> dict[str, list[int]]:
    """The gateway's processes by role: `up` runs the front door itself."""
    found: dict[str, list[int]] = {"front door": [root], "worker": [], "redis": []}
    for pid in descendants(root)[1:]:
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if is_redis(pid):
                found["redis"].append(pid)
            elif " worker --callbacks " in command:  # a config with callbacks (issue #19)
                found.setdefault("callbacks", []).append(pid)
            elif " worker" in command:
                found["worker"].append(pid)
            elif " serve " in command:  # front doors 2..N of `up --front-doors N`
                found["front door"].append(pid)
    # The interactive workers first: callers that take one worker (py-spy, the Redis URL)
    # take [0], and `up`'s batch workers (issue #20) would otherwise often come first.
    found["worker"].sort(key=is_batch_worker)
    return found


def is_batch_worker(pid: int) -> bool:
    """`up`'s batch workers run `worker --batches`."""
    with contextlib.suppress(OSError):
        return b"\0--batches" in Path(f"/proc/{pid}/cmdline").read_bytes()
    return False


def redis_url_of(worker_pid: int) -> str:
    """The embedded Redis's URL, as `up` handed it to its worker."""
    for item in Path(f"/proc/{worker_pid}/environ").read_bytes().split(b"\0"):
        if item.startswith(b"REDIS_URL="):
            return item.split(b"=", 1)[1].decode()
    raise RuntimeError("the worker has no REDIS_URL")


def redis_counters(url: str) -> Counter[str]:
    """Calls per command, the bytes in and out, and the CPU µs, so far (one INFO over
    redis-py, synchronous: read twice, outside the measured window's hot path)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = cast(dict[str, object], client.info("everything"))
    finally:
        client.close()
    found: Counter[str] = Counter()
    for name, figures in info.items():
        if name.startswith("cmdstat_"):
            found[name.removeprefix("cmdstat_")] = int(cast(dict[str, int], figures)["calls"])
    found["(bytes in)"] = int(str(info["total_net_input_bytes"]))
    found["(bytes out)"] = int(str(info["total_net_output_bytes"]))
    cpu_s = float(str(info["used_cpu_user"])) + float(str(info["used_cpu_sys"]))
    found["(cpu µs)"] = round(cpu_s * 1e6)
    return found


def redis_used(before: Counter[str], after: Counter[str]) -> Counter[str]:
    """What the requests used between two reads: the later read's INFO call counts the
    earlier's, which was not theirs."""
    used = after.copy()
    used.subtract(before)
    used["info"] -= 1
    return used


def redis_lines(before: Counter[str], after: Counter[str], done: int) -> list[str]:
    """Redis commands and bytes per request: the capacity model's inputs. Commands a script
    runs count under their own names (INFO commandstats does so), beside the EVAL(SHA)."""
    used = redis_used(before, after)
    calls = {name: n for name, n in used.items() if not name.startswith("(") and n > 0}
    lines = ["", "Redis per request (INFO commandstats and stats, over the same window):", ""]
    lines += ["| command | calls / request |", "|---|---:|"]
    for name, n in sorted(calls.items(), key=lambda item: -item[1]):
        lines.append(f"| {name} | {n / done:.2f} |")
    lines.append(f"| **every command** | **{sum(calls.values()) / done:.2f}** |")
    lines += [
        "",
        f"Bytes per request into Redis {used['(bytes in)'] / done:,.0f}, "
        f"out of Redis {used['(bytes out)'] / done:,.0f}.",
    ]
    return lines


def area_of(frame: str) -> str:
    # py-spy names a file relative to its sys.path entry ("(aiohttp/web.py:1)"): anchor it,
    # so that "/aiohttp/" matches it as it matches an absolute path.
    frame = frame.replace("(", "(/")
    for area, marker in AREAS:
        if marker in frame:
            return area
    return "other (stdlib, C, idle)"


def task_of(stack: str) -> str:
    """The coroutine a sample ran in: the first frame under the event loop (uvloop runs a
    task's step straight from `Runner.run`), so that work done in batches (a ledger flush, a
    callbacks batch) shows apart from requests. py-spy cuts some stacks short: those start
    at the coroutine, or at a thread's own root."""
    frames = stack.split(";")
    for at, frame in enumerate(frames):
        if frame.startswith("Runner.run (asyncio/runners.py") and at + 1 < len(frames):
            return frames[at + 1]
    return frames[0]


def stacks(path: Path) -> Iterator[tuple[str, int]]:
    """(stack, samples) per line of py-spy's collapsed-stack output."""
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            yield stack, int(count_text)


def read_tasks(path: Path) -> tuple[Counter[str], int]:
    """Samples by the coroutine they ran in (`task_of`)."""
    tasks: Counter[str] = Counter()
    for stack, count in stacks(path):
        tasks[task_of(stack)] += count
    return tasks, sum(tasks.values())


def read_collapsed(path: Path) -> tuple[Counter[str], Counter[str], int]:
    """Self samples by area and by function, from py-spy's collapsed-stack output."""
    areas: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for stack, count in stacks(path):
        leaf = stack.split(";")[-1]
        areas[area_of(leaf)] += count
        functions[leaf] += count
        total += count
    return areas, functions, total


async def drive(
    port: int,
    model: str,
    *,
    stream: bool,
    args: argparse.Namespace,
    on_window: Callable[[], None] = lambda: None,
    api_key: str = gateways.MASTER_KEY,
) -> int:
    """Closed-loop load; `on_window` is called as the measured window opens and closes."""
    client = Client(port, build_request(port, model, stream=stream, api_key=api_key))
    conns = await client.open(args.concurrency)
    client.start(conns)
    await asyncio.sleep(1.0)  # warm up before measuring
    on_window()
    client.is_measuring = True
    await asyncio.sleep(args.duration)
    client.is_measuring = False
    on_window()
    await client.stop(conns, 15.0)
    if client.sample.errors:
        raise RuntimeError(f"requests failed: {dict(client.sample.errors)}")
    return len(client.sample.latencies_s)


async def wait_delivered(url: str, timeout_s: float = 180.0, namespace: str | None = None) -> float:
    """Wait until the finished-request stream's consumer groups (the ledger, the callbacks)
    have acknowledged every event; the seconds it took.

    Their work for the window's requests is those requests' CPU: under a saturating load the
    batch process (SCHED_IDLE) falls behind and exports after the load stops, and counted
    without this, the cheapest mode would be the one that defers the most (or the next
    mode would be charged for it). First a pause past the front door's record flush
    (`otel.export_interval_s`, 1 s), so that its last records are on the stream."""
    from redis.asyncio import Redis

    from workers.redis_streams import Keys, TenancyKeys, finished_events
    from workers.settings.switchboard import DEFAULT_NAMESPACE

    # The benchmarks' configs keep the default namespace.
    stream = Keys(namespace or DEFAULT_NAMESPACE).tenancy.ledger
    groups = (TenancyKeys.LEDGER_GROUP, TenancyKeys.CALLBACKS_GROUP)
    started = time.monotonic()
    await asyncio.sleep(FRONT_FLUSH_S)
    client = Redis.from_url(url)
    try:
        # No stream without the ledger (a run with everything off): nothing to wait for.
        while await client.exists(stream) and time.monotonic() - started < timeout_s:
            left = [await finished_events.backlog(client, stream, group) for group in groups]
            if not any(left):
                break
            await asyncio.sleep(0.1)
    finally:
        await client.aclose()
    return time.monotonic() - started


def py_spy() -> str | None:
    """py-spy from PATH or from the venv running this (the bench extra installs it there)."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_py_spy(
    pid: int, out: Path, duration_s: float, cpus: str | None
) -> subprocess.Popen[bytes]:
    argv = [py_spy() or "py-spy", "record", "--pid", str(pid), "--duration", str(int(duration_s))]
    argv += ["--rate", "200", "--format", "raw", "--nonblocking", "--output", str(out)]
    # On the client's core, so that sampling does not steal the gateway's CPU.
    return subprocess.Popen(pinned(argv, cpus), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def profile_mode(
    target: gateways.Target, *, stream: bool, args: argparse.Namespace, client_cpus: str | None
) -> str:
    root = target.service.pid if target.service is not None else 0
    by_role = roles(root)
    use_py_spy = not args.no_py_spy and py_spy() is not None
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {
            role: Path(tmp, f"{role.replace(' ', '-')}.txt") for role in ("front door", "worker")
        }
        redis_url = redis_url_of(by_role["worker"][0])
        window: list[Counter[str]] = []
        before = {role: cpu_s(pids) for role, pids in by_role.items()}
        loops = {role: by_role[role][0] for role in ("front door", "worker")}
        threads_before = {role: thread_cpu_s(pid) for role, pid in loops.items()}
        samplers = []
        if use_py_spy:
            # Started with the warm-up second, ending with the measured window.
            for role, path in outputs.items():
                samplers.append(
                    start_py_spy(by_role[role][0], path, args.duration + 1, client_cpus)
                )
        model = target.stream_model if stream else target.model
        done = await drive(
            target.port,
            model,
            stream=stream,
            args=args,
            on_window=lambda: window.append(redis_counters(redis_url)),
            api_key=target.api_key or gateways.MASTER_KEY,
        )
        settle_s = await wait_delivered(redis_url)
        used = {role: cpu_s(pids) - before[role] for role, pids in by_role.items()}
        threads = {
            role: [a - b for a, b in zip(thread_cpu_s(pid), threads_before[role], strict=True)]
            for role, pid in loops.items()
        }
        for sampler in samplers:
            await asyncio.to_thread(sampler.wait, 60)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            mode = "stream" if stream else "non-stream"
            for path in outputs.values():
                if path.exists():
                    shutil.copy(path, args.keep / f"{mode}-{path.name}")
        lines = [
            f"### {'stream (20 chunks)' if stream else 'non-stream'}, c={args.concurrency}",
            "",
        ]
        lines += [
            f"{done:,} requests; CPU per request (warm-up second included, and the"
            f" {settle_s:.1f} s the ledger and the callbacks took to deliver them after):",
            "",
        ]
        lines += ["| process | CPU µs / request |", "|---|---:|"]
        for role, seconds in used.items():
            lines.append(f"| {role} | {seconds * 1e6 / done:,.0f} |")
        lines.append(f"| **all** | **{sum(used.values()) * 1e6 / done:,.0f}** |")
        lines += ["", "| process | event loop thread µs | other threads µs |", "|---|---:|---:|"]
        for role, (loop_s, others_s) in threads.items():
            lines.append(f"| {role} | {loop_s * 1e6 / done:,.0f} | {others_s * 1e6 / done:,.0f} |")
        lines += redis_lines(window[0], window[1], done)
        if use_py_spy:
            for role, path in outputs.items():
                lines += ["", *render_profile(role, path, args.top)]
        return "\n".join(lines)


def render_profile(role: str, path: Path, top: int) -> list[str]:
    if not path.exists():
        return [f"(no py-spy samples for the {role})"]
    areas, functions, total = read_collapsed(path)
    if not total:
        return [f"(no py-spy samples for the {role})"]
    lines = [f"{role}: where its samples' innermost frames were ({total:,} samples)", ""]
    lines += ["| area | share |", "|---|---:|"]
    lines += [f"| {area} | {count / total:.0%} |" for area, count in areas.most_common()]
    lines += ["", f"{role}: top functions (self)", "", "| function | share |", "|---|---:|"]
    lines += [f"| `{name}` | {count / total:.1%} |" for name, count in functions.most_common(top)]
    tasks, _ = read_tasks(path)
    lines += ["", f"{role}: by the coroutine each sample ran in", "", "| coroutine | share |"]
    lines += ["|---|---:|"]
    lines += [f"| `{name}` | {count / total:.1%} |" for name, count in tasks.most_common(top)]
    return lines


async def run(args: argparse.Namespace, plan: dict[str, str | None]) -> None:
    """`plan` is worked out before main() pins this process to the client's CPU: worked out
    after, it would see one CPU and leave the gateway unpinned."""
    async with realistic.OtlpSink(free_port()) as sink:
        with tempfile.TemporaryDirectory() as tmp, upstream(Path(tmp), plan["client"]) as port:
            config = gateways.write_config(Path(tmp, "config.yaml"), f"http://127.0.0.1:{port}")
            if args.everything_on:
                otlp_url = None if args.without_otel else sink.url
                config = realistic.everything_on(
                    config,
                    Path(tmp, "config-on.yaml"),
                    Path(tmp, "data"),
                    otlp_url,
                    sample_rate=args.sample_rate,
                )
            up_args = []
            if args.callback_workers is not None:
                up_args = ["--callback-workers", str(args.callback_workers)]
            target = gateways.switchboard(
                free_port(),
                config,
                Path(tmp),
                front_doors=1,
                workers=1,
                cpus=plan["gateway"],
                up_args=up_args,
            )
            assert target.service is not None
            target.service.start()
            try:
                await wait_http_ready(target.port, target.ready_path, 60, target.service)
                if args.everything_on:
                    target.api_key = await realistic.database_key(target.port)
                for stream in (False, True):
                    print(
                        await profile_mode(
                            target, stream=stream, args=args, client_cpus=plan["client"]
                        )
                    )
                    print(flush=True)
            finally:
                target.service.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_pinned(lambda plan: run(args, plan), no_pin=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
