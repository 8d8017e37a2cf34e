"""A record is published to its front door only if its sequence number was still free: a
writer presumed dead (its entry taken over) or one racing the client's cancellation must not
have a stale record relayed live, nor stored."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from workers import redis_streams
from workers.redis_streams import Keys


async def append(redis: Redis, keys: Keys, seq: int, record: bytes, ttl_s: int | None) -> object:
    pipe = redis.pipeline(transaction=False)
    assert (
        redis_streams.append_record(pipe, keys, "rid", seq, record, reply_to="door", ttl_s=ttl_s)
        == 1
    )
    results: list[object] = await pipe.execute(raise_on_error=False)
    return results[0]


async def test_a_refused_record_is_not_published(redis: Redis, keys: Keys) -> None:
    listener = redis.pubsub()
    await listener.subscribe(keys.live_channel("door"))
    await listener.get_message(timeout=1)  # the subscribe confirmation
    try:
        assert await append(redis, keys, 1, b"first", ttl_s=60) == 1  # one front door heard it
        assert await append(redis, keys, 2, b"second", ttl_s=None) == 1
        stale = await append(redis, keys, 2, b"stale", ttl_s=None)
        assert isinstance(stale, Exception) and redis_streams.is_seq_taken(stale)
        heard: list[bytes] = []
        async with asyncio.timeout(5):
            while len(heard) < 2:
                message = await listener.get_message(timeout=1)
                if message is not None:
                    heard.append(message["data"])
        assert heard == [b"rid|first", b"rid|second"]
        # Nothing more arrives: the refused record was not relayed.
        assert await listener.get_message(timeout=0.3) is None
    finally:
        await listener.aclose()
    assert [record for _, record in await redis_streams.read_records(redis, keys, "rid")] == [
        b"first",
        b"second",
    ]


async def test_the_first_record_sets_the_ttl_and_the_ones_between_leave_it(
    redis: Redis, keys: Keys
) -> None:
    await append(redis, keys, 1, b"first", ttl_s=600)
    await redis.expire(keys.reply("rid"), 500)
    await append(redis, keys, 2, b"chunk", ttl_s=None)
    assert 490 < await redis.ttl(keys.reply("rid")) <= 500
    await append(redis, keys, 3, b"final", ttl_s=30)
    assert 0 < await redis.ttl(keys.reply("rid")) <= 30
