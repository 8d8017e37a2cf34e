"""Concurrent writers share one pipelined round trip, and each gets only its own replies."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tests.conftest import RoundTrips
from workers.batching import WriteBatcher, failure_of


def xadd(stream: str, entry_id: str, then_expire: bool = False) -> Any:
    def build(pipe: Pipeline) -> int:
        pipe.xadd(stream, {b"f": b"v"}, id=entry_id)
        if then_expire:
            pipe.expire(stream, 60)
        return 2 if then_expire else 1

    return build


async def test_writers_in_one_loop_turn_share_a_round_trip(
    redis: Redis, namespace: str, round_trips: RoundTrips
) -> None:
    batcher = WriteBatcher(redis)
    async with asyncio.timeout(5):
        results = await asyncio.gather(
            batcher.write(xadd(f"{namespace}:a", "0-1", then_expire=True)),
            batcher.write(xadd(f"{namespace}:b", "0-1")),
            batcher.write(xadd(f"{namespace}:c", "0-1", then_expire=True)),
        )
    assert round_trips.count == 1
    assert list(results) == [[b"0-1", True], [b"0-1"], [b"0-1", True]]


async def test_a_failing_command_is_returned_only_to_its_writer(
    redis: Redis, namespace: str
) -> None:
    batcher = WriteBatcher(redis)
    await redis.xadd(f"{namespace}:taken", {b"f": b"v"}, id="0-5")
    async with asyncio.timeout(5):
        ok, refused = await asyncio.gather(
            batcher.write(xadd(f"{namespace}:free", "0-1")),
            batcher.write(xadd(f"{namespace}:taken", "0-3")),  # below the last id: refused
        )
    assert ok == [b"0-1"]
    assert len(refused) == 1 and isinstance(refused[0], ResponseError)


async def test_failure_of_names_a_commands_error_or_the_batchs(
    redis: Redis, namespace: str
) -> None:
    batcher = WriteBatcher(redis)
    await redis.xadd(f"{namespace}:taken", {b"f": b"v"}, id="0-5")
    ok = batcher.queue(xadd(f"{namespace}:free", "0-1"))
    refused = batcher.queue(xadd(f"{namespace}:taken", "0-3"))
    async with asyncio.timeout(5):
        await asyncio.wait({ok, refused})
    assert failure_of(ok) is None
    assert isinstance(failure_of(refused), ResponseError)
    unreachable = WriteBatcher(Redis.from_url("redis://127.0.0.1:1/0"))
    lost = unreachable.queue(xadd("x", "0-1"))
    async with asyncio.timeout(5):
        await asyncio.wait({lost})
    assert isinstance(failure_of(lost), RedisConnectionError)
    await unreachable.redis.aclose()


async def test_a_lost_connection_reaches_every_writer_of_the_batch() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:1/0")
    batcher = WriteBatcher(unreachable)
    try:
        async with asyncio.timeout(5):
            outcomes = await asyncio.gather(
                batcher.write(xadd("x", "0-1")),
                batcher.write(xadd("y", "0-1")),
                return_exceptions=True,
            )
        assert all(isinstance(o, RedisConnectionError) for o in outcomes)
    finally:
        await unreachable.aclose()


async def test_a_rider_goes_out_with_the_next_batch_ahead_of_it(
    redis: Redis, namespace: str, round_trips: RoundTrips
) -> None:
    batcher = WriteBatcher(redis)
    rider = batcher.queue_rider(xadd(f"{namespace}:s", "0-1"), within_s=60)
    await asyncio.sleep(0.05)  # no batch yet: the rider waits
    assert round_trips.count == 0 and batcher.is_unsent(rider)
    async with asyncio.timeout(5):
        # Queued after the rider, on the same stream: refused if it reached Redis first.
        later = await batcher.write(xadd(f"{namespace}:s", "0-2"))
        assert await rider == [b"0-1"] and later == [b"0-2"]
    assert round_trips.count == 1 and not batcher.is_unsent(rider)


async def test_a_rider_with_no_batch_to_ride_goes_out_alone_in_time(
    redis: Redis, namespace: str, round_trips: RoundTrips
) -> None:
    batcher = WriteBatcher(redis)
    riders = [batcher.queue_rider(xadd(f"{namespace}:{n}", "0-1"), within_s=0.05) for n in "ab"]
    async with asyncio.timeout(5):
        assert await asyncio.gather(*riders) == [[b"0-1"], [b"0-1"]]
    assert round_trips.count == 1  # both riders, one round trip


async def test_closing_sends_the_riders(redis: Redis, namespace: str) -> None:
    batcher = WriteBatcher(redis)
    rider = batcher.queue_rider(xadd(f"{namespace}:s", "0-1"), within_s=60)
    async with asyncio.timeout(5):
        await batcher.aclose()
        assert await rider == [b"0-1"]
    assert await redis.xlen(f"{namespace}:s") == 1
