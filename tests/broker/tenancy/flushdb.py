"""What the budget tests around a FLUSHDB share: a Redis of the test's own, a front door
and a worker on it, a second front door started after the loss, and a request of the
priced model (one spends more than the budgets those tests set)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from broker.config.loader import Config
from tests.broker.harness import (
    RunningFrontDoor,
    RunningWorker,
    start_front_door,
    start_worker,
)
from tests.broker.tenancy.conftest import HELLO
from tests.broker.test_redis_restart import PrivateRedis


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A Redis of this test's own: FLUSHDB on the shared one would wipe other tests'."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


class OnPrivateRedis:
    """A front door and a worker on the test's Redis, and a client of that Redis."""

    def __init__(
        self, config: Config, url: str, door: RunningFrontDoor, worker: RunningWorker
    ) -> None:
        self.config = config
        self.url = url
        self.door = door
        self.worker = worker
        self.redis = Redis.from_url(url)
        self.later: RunningFrontDoor | None = None

    async def start_later(self) -> RunningFrontDoor:
        """A front door started after the loss, on the empty Redis."""
        self.later = await start_front_door(self.config, self.url)
        return self.later


@contextlib.asynccontextmanager
async def gateway_on(config: Config, redis_url: str) -> AsyncIterator[OnPrivateRedis]:
    door = await start_front_door(config, redis_url)
    worker = await start_worker(config, redis_url)
    gateway = OnPrivateRedis(config, redis_url, door, worker)
    try:
        yield gateway
    finally:
        await gateway.redis.aclose()
        if gateway.later is not None:
            await gateway.later.stop()
        await worker.stop()
        await door.stop()


async def chat_priced(http: aiohttp.ClientSession, url: str, key: str) -> tuple[int, str]:
    async with http.post(
        url + "/v1/chat/completions",
        json={"model": "priced", "messages": HELLO},
        headers={"Authorization": f"Bearer {key}"},
    ) as reply:
        return reply.status, await reply.text()
