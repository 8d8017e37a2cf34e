"""Fixtures every suite shares: a real Redis client, a key namespace of the test's own
(deleted afterwards; other suites may share the server), the fake upstream, and a count of
the Redis round trips a test makes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from tests.redis_helpers import REDIS_URL, delete_namespace, new_namespace
from workers.http import close_shared_client
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def namespace(redis: Redis) -> AsyncIterator[str]:
    name = new_namespace()
    yield name
    await delete_namespace(redis, name)


@pytest.fixture
def keys(namespace: str) -> Keys:
    return Keys(namespace)


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as upstream:
        yield upstream
    # The SDK keeps one HTTP session per event loop; each test has its own loop.
    await close_shared_client()


class RoundTrips:
    """How many pipelines were sent to Redis (each is one round trip)."""

    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> RoundTrips:
    counted = RoundTrips()
    original = Pipeline.execute

    async def counting(self: Pipeline, raise_on_error: bool = True) -> Any:
        counted.count += 1
        return await original(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", counting)
    return counted
