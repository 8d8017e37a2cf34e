"""The scenarios: closed-loop load at a fixed concurrency for a fixed time, a soak of
thousands of concurrent streams, and a burst of queued requests. Each returns plain dicts
(the JSON the runner writes)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from benchmarks.gateways import MASTER_KEY, STREAM_CHUNKS, Target
from benchmarks.loadgen import Client, StreamCheck, build_request, wait_until_done
from benchmarks.procs import MIB, TreeMonitor

# A stream holds a role chunk, the content chunks, the usage chunk and [DONE].
MIN_STREAM_EVENTS = STREAM_CHUNKS + 2


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def _ms_stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": percentile(ordered, 50) * 1000,
        "p90": percentile(ordered, 90) * 1000,
        "p99": percentile(ordered, 99) * 1000,
        "mean": (sum(ordered) / len(ordered) * 1000) if ordered else float("nan"),
    }


def _usage(monitor: TreeMonitor | None, usage: Any, done: int) -> dict[str, Any]:
    if monitor is None or usage is None:
        return {
            "cpu_ms_per_request": None,
            "peak_rss_mib": None,
            "peak_root_rss_mib": None,
            "peak_processes_rss_mib": None,
            "peak_redis_rss_mib": None,
        }
    return {
        "cpu_ms_per_request": usage.cpu_s * 1000 / done if done else None,
        "cpu_s": usage.cpu_s,
        "peak_rss_mib": usage.peak_rss_bytes / MIB,
        "peak_root_rss_mib": usage.peak_root_rss_bytes / MIB,
        "peak_processes_rss_mib": usage.peak_processes_rss_bytes / MIB,
        "peak_redis_rss_mib": usage.peak_redis_rss_bytes / MIB,
    }


async def load(
    target: Target,
    *,
    stream: bool,
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    drain_s: float,
    api_key: str = MASTER_KEY,
) -> dict[str, Any]:
    """Closed loop: `concurrency` connections, each sending its next request on an answer."""
    model = target.stream_model if stream else target.model
    check = StreamCheck(None, MIN_STREAM_EVENTS) if stream else None
    client = Client(
        target.port,
        build_request(target.port, model, stream=stream, api_key=api_key, headers=target.headers),
        stream_check=check,
    )
    conns = await client.open(concurrency)
    monitor = TreeMonitor(target.service.pid) if target.service is not None else None
    client.start(conns)
    await asyncio.sleep(warmup_s)
    if monitor is not None:
        monitor.start()
    client.is_measuring = True
    started = time.perf_counter()
    await asyncio.sleep(duration_s)
    client.is_measuring = False
    elapsed = time.perf_counter() - started
    usage = await monitor.stop() if monitor is not None else None
    left = await client.stop(conns, drain_s)
    sample = client.sample
    done = len(sample.latencies_s)
    result: dict[str, Any] = {
        "target": target.name,
        "mode": "stream" if stream else "non-stream",
        "concurrency": concurrency,
        "duration_s": elapsed,
        "requests": done,
        "rps": done / elapsed,
        "latency_ms": _ms_stats(sample.latencies_s),
        "errors": sum(sample.errors.values()),
        "error_kinds": sample.errors,
        "bad_streams": sample.bad_streams,
        "unfinished_at_end": left,
        **_usage(monitor, usage, done),
    }
    if stream:
        result["ttft_ms"] = _ms_stats(sample.ttfts_s)
    result["latencies_ms"] = [round(v * 1000, 3) for v in sample.latencies_s[:20_000]]
    return result


async def expected_stream_text(target: Target) -> str:
    """The text a slow stream carries, read once from the upstream to check every copy."""
    check = StreamCheck(None, MIN_STREAM_EVENTS)
    client = Client(
        target.port,
        build_request(target.port, target.slow_stream_model, stream=True, api_key=MASTER_KEY),
        stream_check=check,
        total_requests=1,
    )
    conns = await client.open(1)
    client.is_measuring = True
    client.start(conns)
    if not await wait_until_done(client, 30) or not check.last_body:
        raise RuntimeError("the upstream did not answer the reference stream")
    await client.stop(conns, 1)
    return StreamCheck.text_of(check.last_body)


async def many(
    target: Target,
    *,
    stream: bool,
    requests: int,
    connections: int,
    timeout_s: float,
    expected_text: str | None = None,
) -> dict[str, Any]:
    """A fixed number of requests over `connections` at once: the soak and the burst."""
    model = target.slow_stream_model if stream else target.model
    check = StreamCheck(expected_text, MIN_STREAM_EVENTS) if stream else None
    client = Client(
        target.port,
        build_request(
            target.port, model, stream=stream, api_key=MASTER_KEY, headers=target.headers
        ),
        stream_check=check,
        total_requests=requests,
    )
    conns = await client.open(connections)
    monitor = TreeMonitor(target.service.pid) if target.service is not None else None
    if monitor is not None:
        monitor.start()
    client.is_measuring = True
    started = time.perf_counter()
    client.start(conns)
    finished = await wait_until_done(client, timeout_s)
    elapsed = time.perf_counter() - started
    usage = await monitor.stop() if monitor is not None else None
    left = await client.stop(conns, 1)
    sample = client.sample
    done = len(sample.latencies_s)
    server_errors = sum(n for status, n in sample.statuses.items() if status >= 500)
    return {
        "target": target.name,
        "mode": "stream" if stream else "non-stream",
        "requests": requests,
        "connections": connections,
        "completed_ok": done,
        "all_completed": finished and done == requests,
        "elapsed_s": elapsed,
        "rate_per_s": done / elapsed,
        "errors": sum(sample.errors.values()),
        "error_kinds": sample.errors,
        "server_errors_5xx": server_errors,
        "bad_streams": sample.bad_streams,
        "unfinished_at_end": left,
        "latency_ms": _ms_stats(sample.latencies_s),
        **_usage(monitor, usage, done),
    }
