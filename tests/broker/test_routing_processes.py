"""Routing across real worker processes (`switchboard worker`) sharing one Redis: rpm limits
hold cluster-wide, and a killed worker's in-flight count expires with its liveness."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from broker.config.loader import load_config_text
from tests.broker.harness import start_front_door, wait_until
from tests.broker.processes import Process, switchboard
from tests.broker.routing_setup import HELLO, ask_many, deployment, routing_yaml, served
from tests.redis_helpers import REDIS_URL
from workers.redis_streams import Keys
from workers.routing.figures import read_figures
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path, namespace: str, redis: Redis, models: list[dict[str, Any]], **router: Any
) -> AsyncIterator[tuple[str, list[Process]]]:
    """An in-process front door and two `switchboard worker` processes, ready."""
    text = routing_yaml(namespace, models, **router)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    door = await start_front_door(load_config_text(text))
    try:
        async with contextlib.AsyncExitStack() as stack:
            workers = [
                await stack.enter_async_context(
                    switchboard(
                        "worker",
                        "--config",
                        str(path),
                        directory=tmp_path,
                        redis_url=REDIS_URL,
                        name=f"worker{i}",
                    )
                )
                for i in range(2)
            ]
            keys = Keys(namespace)

            async def both_alive() -> bool:
                return int(await redis.zcard(keys.heartbeats)) == 2

            await wait_until(both_alive, timeout_s=60)
            yield door.url, workers
    finally:
        await door.stop()


async def test_usage_based_routing_respects_rpm_across_worker_processes(
    fake: FakeUpstream, namespace: str, redis: Redis, tmp_path: Path
) -> None:
    base = fake.base_url + "/v1"
    models = [
        deployment("rpm", base, "m~latency=0.02", id="limited", rpm=4),
        deployment("rpm", base, "m", id="open", rpm=10_000),
    ]
    async with (
        cluster(tmp_path, namespace, redis, models, routing_strategy="usage-based-routing-v2") as (
            url,
            _workers,
        ),
        aiohttp.ClientSession() as session,
    ):
        minute_before = int(time.time() // 60)
        replies = await ask_many(session, url, "rpm", 24, concurrency=6)
        minutes = int(time.time() // 60) - minute_before + 1
    counts = served(replies)
    # Each clock minute allows 4 on `limited`, whichever worker process admits them.
    assert 1 <= counts["limited"] <= 4 * minutes, counts
    assert counts["open"] == 24 - counts["limited"]
    assert len({reply.worker for reply in replies}) == 2


async def test_a_killed_workers_in_flight_count_expires(
    fake: FakeUpstream, namespace: str, redis: Redis, tmp_path: Path
) -> None:
    models = [deployment("stuck", fake.base_url + "/v1", "m~hang", id="h")]
    keys = Keys(namespace)

    async def in_flight() -> int:
        return (await read_figures(redis, keys, {"stuck": ["h"]})).get("stuck", "h").in_flight

    # No reclaim within the test, so only the killed worker ever holds the request.
    async with (
        cluster(tmp_path, namespace, redis, models, settings={"claim_idle_ms": 120_000}) as (
            url,
            workers,
        ),
        aiohttp.ClientSession() as session,
    ):
        body = {"model": "stuck", "messages": HELLO}
        request = asyncio.create_task(session.post(url + "/v1/chat/completions", json=body))
        await wait_until(lambda: _equals(in_flight, 1), timeout_s=30)
        for process in workers:  # kill -9 both: whichever holds it dies without a word
            os.kill(process.pid, signal.SIGKILL)
        await wait_until(lambda: _equals(in_flight, 0), timeout_s=15)
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)


async def _equals(read: Any, expected: int) -> bool:
    return bool(await read() == expected)
