"""The capacity model's inputs, measured, and the model checked against a Redis Cluster run.

    python -m benchmarks.capacity                        # ~3 minutes: 3 setups, 12 windows
    python -m benchmarks.capacity --duration 2 --no-cluster
    python -m benchmarks.capacity --render benchmarks/CAPACITY.json   # the report again

First `switchboard up` with 1 front door, 1 worker and its embedded Redis; then 2 front doors
and 2 workers, on the embedded Redis and on a local 3-shard Redis Cluster
(tests/deploy/redis_cluster.py starts it). In each, closed-loop load (c=64) for the master
key and a database key (limits, a budget, a team: admission and the spend ledger),
non-stream and stream, each window measuring per request: Redis commands, bytes and CPU
from INFO deltas on every node, and the CPU seconds of the front doors, the workers, the
fake upstream and this client from /proc. The gateway's processes (Redis included) share
one core, the client and upstream the other, as in benchmarks.profile.
benchmarks/capacity_model.py turns the figures into requests per second per core and per
shard, the fleet formula and the predicted-against-measured table;
benchmarks/capacity_report.py writes it to --out (benchmarks/CAPACITY.md) and the raw
figures beside it as JSON. Run it under `flock /tmp/bench.lock` on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

from benchmarks import capacity_model as cm
from benchmarks import capacity_report, gateways, realistic
from benchmarks.procs import cpu_s, descendants, is_redis, wait_http_ready
from benchmarks.profile import drive, redis_counters, redis_url_of, redis_used, roles
from benchmarks.run import free_port, run_pinned, upstream

HERE = Path(__file__).resolve().parent
MODES = {"non-stream": False, "stream": True}
# The slots no number of shards spreads (workers/redis_streams/key_names.py).
PINNED_TAGS = ("{q}", "{rt:bench}", "{rt:bench-stream}", "{w}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capacity", description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0, help="measured s per window")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--idle", type=float, default=3.0, help="s measured with no load")
    parser.add_argument("--settle", type=float, default=3.0, help="s waited before that")
    parser.add_argument("--keys", default="master,database", help="key paths measured")
    parser.add_argument("--modes", default="non-stream,stream")
    parser.add_argument("--front-doors", type=int, default=2, help="in the cluster run")
    parser.add_argument("--workers", type=int, default=2, help="in the cluster run")
    parser.add_argument("--no-cluster", action="store_true", help="only 1 + 1 on one Redis")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPUs")
    parser.add_argument("--target-rps", default="3000,6000", help="for the sizing table")
    parser.add_argument("--out", type=Path, default=HERE / "CAPACITY.md")
    parser.add_argument(
        "--render", type=Path, help="only write --out again from a run's JSON, measuring nothing"
    )
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------ measuring


def upstream_pids() -> list[int]:
    """The fake upstream, a child of this process."""
    found = []
    for pid in descendants(os.getpid())[1:]:
        with contextlib.suppress(OSError):
            if b"workers.testing" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


Snapshot = tuple[float, dict[str, float], dict[str, Counter[str]]]


def snapshot(by_role: dict[str, list[int]], redis_urls: dict[str, str]) -> Snapshot:
    """The clock, each role's CPU seconds and each Redis node's INFO counters, now."""
    cpu = {role: cpu_s(by_role[role]) for role in ("front door", "worker", "upstream")}
    cpu["client"] = time.process_time()
    shards = {node: redis_counters(url) for node, url in redis_urls.items()}
    return time.perf_counter(), cpu, shards


def between(first: Snapshot, last: Snapshot) -> Snapshot:
    """What was spent from one snapshot to the next."""
    (t0, cpu0, redis0), (t1, cpu1, redis1) = first, last
    cpu = {role: cpu1[role] - cpu0[role] for role in cm.ROLES}
    return t1 - t0, cpu, {node: redis_used(redis0[node], used) for node, used in redis1.items()}


def processes(target: gateways.Target) -> dict[str, list[int]]:
    assert target.service is not None
    by_role = roles(target.service.pid)
    by_role["upstream"] = upstream_pids()
    return by_role


async def idle_rates(
    target: gateways.Target, redis_urls: dict[str, str], seconds: float
) -> dict[str, float]:
    """CPU seconds per second each role and each Redis node spends with no request
    (heartbeats, monitors, Redis's cron and cluster bus): a cost per process, not per
    request, so the phases leave it out."""
    by_role = processes(target)
    first = snapshot(by_role, redis_urls)
    await asyncio.sleep(seconds)
    window_s, cpu, shards = between(first, snapshot(by_role, redis_urls))
    rates = {role: spent / window_s for role, spent in cpu.items()}
    rates |= {node: used["(cpu µs)"] / 1e6 / window_s for node, used in shards.items()}
    return rates


async def measure(
    target: gateways.Target,
    redis_urls: dict[str, str],
    *,
    phase: tuple[str, tuple[str, str], str],
    idle_per_s: dict[str, float],
    args: argparse.Namespace,
) -> cm.Phase:
    """One window of closed-loop load, and what each part spent in it per request."""
    setup, (key_name, api_key), mode = phase
    by_role = processes(target)
    marks: list[Snapshot] = []
    stream = MODES[mode]
    done = await drive(
        target.port,
        target.stream_model if stream else target.model,
        stream=stream,
        args=args,
        on_window=lambda: marks.append(snapshot(by_role, redis_urls)),
        api_key=api_key,
    )
    window_s, cpu, shards = between(*marks)
    measured = cm.Phase(setup, key_name, mode, done, window_s, cpu, shards, idle_per_s)
    print(f"  {setup}, {key_name}, {mode}: {done:,} requests, {measured.rps:,.0f} rps", flush=True)
    return measured


def write_gateway_config(root: Path, upstream_port: int) -> Path:
    root.mkdir(parents=True)
    config = gateways.write_config(root / "config.yaml", f"http://127.0.0.1:{upstream_port}")
    realistic.with_database(config, root)
    return config


@contextlib.asynccontextmanager
async def gateway(
    root: Path,
    upstream_port: int,
    *,
    front_doors: int,
    workers: int,
    cpus: str | None,
    redis_url: str | None,
) -> AsyncIterator[gateways.Target]:
    """`switchboard up` with a database (SQLite in `root`), on `redis_url` or its own Redis."""
    config = write_gateway_config(root, upstream_port)
    target = gateways.switchboard(
        free_port(), config, root, front_doors=front_doors, workers=workers, cpus=cpus
    )
    service = target.service
    assert service is not None and service.env is not None
    service.env["SWITCHBOARD_DATA_DIR"] = str(root)
    if redis_url is not None:
        service.env["REDIS_URL"] = redis_url
    service.start()
    try:
        await wait_http_ready(target.port, target.ready_path, 90, service)
        yield target
    finally:
        service.stop()


def key_paths(args: argparse.Namespace, database_key: str) -> list[tuple[str, str]]:
    known = {"master": ("master key", gateways.MASTER_KEY), "database": ("database key", "")}
    chosen = [known[name] for name in args.keys.split(",")]
    return [(name, key or database_key) for name, key in chosen]


async def run_setup(
    target: gateways.Target, redis_urls: dict[str, str], setup: str, args: argparse.Namespace
) -> list[cm.Phase]:
    database_key = await realistic.database_key(target.port)
    # Readiness is the first front door's; the others may still be importing.
    await asyncio.sleep(args.settle)
    idle_per_s = await idle_rates(target, redis_urls, args.idle)
    phases = []
    for key in key_paths(args, database_key):
        for mode in args.modes.split(","):
            phases.append(
                await measure(
                    target, redis_urls, phase=(setup, key, mode), idle_per_s=idle_per_s, args=args
                )
            )
    return phases


# ------------------------------------------------------------------------------ the cluster


@contextlib.contextmanager
def cluster(workdir: Path, cpus: str | None) -> Iterator[list[int]]:
    """The tests' 3-master cluster, its redis-servers pinned to the gateway's core."""
    from tests.deploy.redis_cluster import redis_cluster

    workdir.mkdir(parents=True)
    with redis_cluster(workdir) as ports:
        if cpus is not None:
            for pid in descendants(os.getpid())[1:]:
                if is_redis(pid):
                    os.sched_setaffinity(pid, {int(cpus)})
        yield ports


def slot_owners(ports: list[int]) -> dict[str, list[str]]:
    """Which node holds each pinned hash tag's slot."""
    import redis
    from redis.crc import key_slot

    client = redis.Redis(port=ports[0])
    try:
        ranges = cast(Any, client).execute_command("CLUSTER SLOTS")
    finally:
        client.close()
    owners: dict[str, list[str]] = {}
    for tag in PINNED_TAGS:
        slot = key_slot(tag.encode())
        for start, end, master, *_ in ranges:
            if start <= slot <= end:
                node = f"127.0.0.1:{master[1]}"
                owners.setdefault(node, []).append(tag)
    return owners


async def run(args: argparse.Namespace, plan: dict[str, str | None]) -> None:
    loads_before = capacity_report.load_average()
    clustered: list[cm.Phase] = []
    slots: dict[str, list[str]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="sb-capacity-") as tmp,
        upstream(Path(tmp), plan["client"]) as port,
    ):
        print("single Redis:", flush=True)
        async with gateway(
            Path(tmp, "single"),
            port,
            front_doors=1,
            workers=1,
            cpus=plan["gateway"],
            redis_url=None,
        ) as target:
            assert target.service is not None
            urls = {"embedded": redis_url_of(roles(target.service.pid)["worker"][0])}
            single = await run_setup(target, urls, "single", args)
        if not args.no_cluster:
            # The cluster run's processes on one Redis: what more processes cost, apart
            # from what the cluster costs.
            print("Cluster's process count on one Redis:", flush=True)
            async with gateway(
                Path(tmp, "spread"),
                port,
                front_doors=args.front_doors,
                workers=args.workers,
                cpus=plan["gateway"],
                redis_url=None,
            ) as target:
                assert target.service is not None
                urls = {"embedded": redis_url_of(roles(target.service.pid)["worker"][0])}
                single += await run_setup(target, urls, "spread", args)
        if not args.no_cluster:
            print("Redis Cluster:", flush=True)
            with cluster(Path(tmp, "cluster"), plan["gateway"]) as ports:
                urls = {f"127.0.0.1:{p}": f"redis://127.0.0.1:{p}" for p in ports}
                slots = slot_owners(ports)
                async with gateway(
                    Path(tmp, "on-cluster"),
                    port,
                    front_doors=args.front_doors,
                    workers=args.workers,
                    cpus=plan["gateway"],
                    redis_url=f"redis+cluster://127.0.0.1:{ports[0]}",
                ) as target:
                    clustered = await run_setup(target, urls, "cluster", args)
    about = capacity_report.meta(
        loads=[loads_before, capacity_report.load_average()],
        slots=slots,
        concurrency=args.concurrency,
        duration_s=args.duration,
        front_doors=args.front_doors,
        workers=args.workers,
        gateway_cores=1.0 if plan["gateway"] is not None else float(os.cpu_count() or 1),
        targets_rps=[float(rps) for rps in args.target_rps.split(",")],
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    capacity_report.save(args.out.with_suffix(".json"), about, single + clustered)
    text = capacity_report.render(about, single + clustered)
    args.out.write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        args.out.write_text(capacity_report.render(*capacity_report.load(args.render)))
        return 0
    run_pinned(lambda plan: run(args, plan), no_pin=args.no_pin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
