from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.redis_helpers import REDIS_URL, delete_namespace, new_namespace
from workers.streams import Keys


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def keys(redis: Redis) -> AsyncIterator[Keys]:
    name = new_namespace()
    yield Keys(name)
    await delete_namespace(redis, name)
