"""The waiting time per lane /metrics shows (switchboard_queue_oldest_wait_seconds): the age
of the oldest entry no worker has taken yet, on Redis's clock; 0 when none waits."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from workers import redis_streams
from workers.redis_streams import Keys


async def test_the_oldest_untaken_entry_says_how_long_a_lane_waits(
    redis: Redis, keys: Keys
) -> None:
    lanes = ["default", "batches", "missing"]
    await redis_streams.ensure_groups(redis, keys, lanes[:2])
    assert await redis_streams.queue_waits(redis, keys, lanes) == dict.fromkeys(lanes, 0.0)
    await redis_streams.enqueue(redis, keys, "default", b"first")
    await asyncio.sleep(0.3)
    await redis_streams.enqueue(redis, keys, "default", b"second")
    waits = await redis_streams.queue_waits(redis, keys, lanes)
    assert 0.3 <= waits["default"] < 5 and waits["batches"] == waits["missing"] == 0.0
    # A worker takes the first: the lane's wait is now the second's, younger.
    taken = await redis_streams.read_requests(redis, keys, "w1", ["default"], count=1, block_ms=10)
    assert len(taken) == 1
    assert (await redis_streams.queue_waits(redis, keys, lanes))["default"] < 0.3
    await redis_streams.read_requests(redis, keys, "w1", ["default"], count=1, block_ms=10)
    assert (await redis_streams.queue_waits(redis, keys, lanes))["default"] == 0.0
