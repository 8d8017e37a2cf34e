"""`up`'s embedded Redis keeps a small reply small (issue #22): Redis 6.2 allocates every new
stream node at `stream-node-max-bytes`, so with the default 4 KiB a one-record reply cost
4.3 KB; the embedded Redis sets 1 KiB."""

from __future__ import annotations

from redis.asyncio import Redis

from broker.embedded_redis import STREAM_NODE_MAX_BYTES, EmbeddedRedis

A_NON_STREAM_REPLY = b"x" * 600


async def test_a_one_record_reply_stream_costs_under_two_kilobytes() -> None:
    with EmbeddedRedis(64 * 1024 * 1024) as server:
        client = Redis.from_url(server.url)
        try:
            setting = await client.config_get("stream-node-max-bytes")
            assert int(setting["stream-node-max-bytes"]) == STREAM_NODE_MAX_BYTES
            await client.xadd("reply", {"r": A_NON_STREAM_REPLY}, id="0-1")
            used = await client.memory_usage("reply")
            assert used is not None and used < 2_000
        finally:
            await client.aclose()
