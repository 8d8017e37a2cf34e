"""Fixtures every suite shares: a real Redis client, a key namespace of the test's own
(deleted afterwards; other suites may share the server), and the fake upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.redis_helpers import REDIS_URL, delete_namespace, new_namespace
from workers.http import close_shared_client
from workers.streams import Keys
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
