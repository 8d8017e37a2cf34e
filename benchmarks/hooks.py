"""What the hooks of issue #19 cost per request, side by side in one run:

    python -m benchmarks.hooks                 # 400 requests per case, 8 at a time, 3 rounds
    python -m benchmarks.hooks --requests 2000 --concurrency 16

One process holds a front door, a worker (with its callbacks consumer), the fake upstream
and the client (the test harness, on the local Redis at SWITCHBOARD_TEST_REDIS_URL), so CPU
is the whole gateway's: `time.process_time()` over the run, every thread included (the
OTLP exporter's too), divided by the requests; delivery to the callbacks is waited for
before the clock stops. The OTLP receiver runs in a process of its own (a collector's
decoding is not the gateway's cost; --collector-in-process puts it back). Redis's own CPU
is not counted, in any case. Cases: plain (no hooks); cache on, every request a miss; cache on,
every request a hit; callbacks on (`otel` to a local OTLP/HTTP receiver, and `jsonl`).
Writes a Markdown table to stdout (and --out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from tests.broker.harness import flush_front_spans, make_config, service
from tests.broker.otlp_receiver import OtlpReceiver
from tests.broker.processes import free_port
from tests.redis_helpers import REDIS_URL, delete_namespace, new_namespace
from workers.testing.server import FakeUpstream

Body = Callable[[int], dict[str, Any]]


def _same(i: int) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": "the same question"}]}


def _unique(i: int) -> dict[str, Any]:
    text = f"question {i} {uuid.uuid4().hex}"
    return {"model": "gpt-test", "messages": [{"role": "user", "content": text}]}


async def _load(
    url: str, body: Body, requests: int, concurrency: int, path: str = "/v1/chat/completions"
) -> list[float]:
    latencies: list[float] = []
    counter = iter(range(requests))
    async with aiohttp.ClientSession() as http:

        async def one_client() -> None:
            for i in counter:
                started = time.perf_counter()
                async with http.post(url + path, json=body(i)) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return latencies


async def _case(
    name: str,
    config: Any,
    body: Body,
    args: argparse.Namespace,
    before: Callable[[str], Awaitable[None]] | None = None,
    path: str = "/v1/chat/completions",
) -> dict[str, Any]:
    async with service(config) as ([door], workers):
        if before is not None:
            await before(door.url)
        await _load(door.url, body, min(50, args.requests), args.concurrency, path)  # warm up
        cpu, wall = time.process_time(), time.perf_counter()
        latencies = await _load(door.url, body, args.requests, args.concurrency, path)
        await flush_front_spans([door])  # the front door's span records onto the stream first
        for running in workers:
            consumer = running.worker.callback_consumer
            if consumer is not None:
                await consumer.flush(60)  # delivery (the spans made, encoded, sent) is cost
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    latencies.sort()
    return {
        "case": name,
        "cpu_ms": cpu * 1000 / args.requests,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "rps": args.requests / wall,
    }


@contextlib.asynccontextmanager
async def _collector(in_process: bool) -> AsyncIterator[str]:
    """The OTLP receiver's URL: in a process of its own (the collector's CPU is not the
    gateway's), or in this one (--collector-in-process, as the first runs measured)."""
    if in_process:
        async with OtlpReceiver() as receiver:
            yield receiver.url
        return
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.broker.otlp_receiver",
        str(free_port()),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        yield (await asyncio.wait_for(process.stdout.readline(), 60)).decode().strip()
    finally:
        process.terminate()
        await process.wait()


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    redis = Redis.from_url(REDIS_URL)
    results = []
    async with FakeUpstream() as fake, _collector(args.collector_in_process) as collector_url:
        base = fake.base_url + "/v1"
        with tempfile.TemporaryDirectory() as tmp:
            cases: list[tuple[str, str, Body]] = [
                ("plain", "", _unique),
                ("cache on, misses", "litellm_settings:\n  cache: true\n", _unique),
                ("cache on, hits", "litellm_settings:\n  cache: true\n", _same),
                (
                    "callbacks on (jsonl)",
                    "litellm_settings:\n  success_callback: [jsonl]\n"
                    f"callback_settings:\n  jsonl: {{path: {Path(tmp) / 'calls.jsonl'}}}\n",
                    _unique,
                ),
                (
                    # A function that does nothing: what the stream's delivery itself costs.
                    "callbacks on (no-op function)",
                    "litellm_settings:\n"
                    "  success_callback: [tests.broker.callback_targets.log_success]\n",
                    _unique,
                ),
                (
                    "tracing on (otel)",
                    "litellm_settings:\n  callbacks: [otel]\n"
                    f"callback_settings:\n  otel: {{endpoint: {collector_url}}}\n",
                    _unique,
                ),
                (
                    # Sampling is decided first: an unsampled request builds nothing.
                    "tracing on (otel, sample_rate 0.1)",
                    "litellm_settings:\n  callbacks: [otel]\n"
                    "callback_settings:\n"
                    f"  otel: {{endpoint: {collector_url}, sample_rate: 0.1}}\n",
                    _unique,
                ),
            ]
            # Rounds interleave the cases, and each case keeps its least-CPU round: on a
            # shared machine other jobs only ever add time.
            if args.cases:
                cases = [c for c in cases if c[0] == "plain" or any(w in c[0] for w in args.cases)]
            best: dict[str, dict[str, Any]] = {}
            for _ in range(args.rounds):
                for name, general, body in cases:
                    namespace = new_namespace()
                    try:
                        config = make_config(base, namespace, general=general)
                        result = await _case(name, config, body, args)
                    finally:
                        await delete_namespace(redis, namespace)
                    if name not in best or result["cpu_ms"] < best[name]["cpu_ms"]:
                        best[name] = result
            results = [best[name] for name, _, _ in cases]
    await redis.aclose()
    return results


def table(results: list[dict[str, Any]]) -> str:
    plain = results[0]["cpu_ms"]
    lines = [
        "| case | CPU per request (ms) | vs plain | p50 (ms) | p99 (ms) | requests/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['case']} | {r['cpu_ms']:.2f} | {r['cpu_ms'] / plain - 1:+.0%} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hooks", description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="each case's least-CPU round counts")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--collector-in-process",
        action="store_true",
        help="run the OTLP receiver in this process (its decoding then counts as CPU)",
    )
    parser.add_argument(
        "--cases",
        nargs="*",
        help="only the cases whose names contain one of these words (and plain, the baseline)",
    )
    args = parser.parse_args(argv)
    text = table(asyncio.run(run(args)))
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
