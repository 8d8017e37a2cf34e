"""A record is published to its front door only if its sequence number was still free: a
writer presumed dead (its entry taken over) or one racing the client's cancellation must not
have a stale record relayed live, nor stored."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from workers import envelopes, redis_streams
from workers.envelopes import KIND_CHAT, Envelope, Record
from workers.redis_streams import Keys
from workers.runtime.jobs import Job, ReplyTaken, ReplyWriter


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


# --------------------------------------------------------------------------- takeovers (issue #15)


async def held_entry(redis: Redis, keys: Keys, consumer: str) -> bytes:
    """An entry in the default lane, read by `consumer`."""
    await redis_streams.ensure_groups(redis, keys, ["default"])
    envelope = Envelope("rid", KIND_CHAT, "g", True, 2**62, 0, "door", "default", b"{}")
    await redis_streams.enqueue(redis, keys, "default", envelopes.encode(envelope))
    ((_, entry, _),) = await redis_streams.read_requests(
        redis, keys, consumer, ["default"], 1, None
    )
    return entry


async def owner(redis: Redis, keys: Keys, entry: bytes) -> str | None:
    rows: Any = await redis.xpending_range(
        keys.lane("default"), redis_streams.GROUP, entry, entry, 1
    )
    return rows[0]["consumer"].decode() if rows else None


async def test_a_taker_beaten_to_the_reply_gives_the_entry_back_to_the_live_worker(
    redis: Redis, keys: Keys
) -> None:
    """Worker "b" took over "a"'s entry, but "a" was only paused and wrote first: "b"'s
    write is refused, and "a" holds the entry again (its renewals keep it; it answers)."""
    entry = await held_entry(redis, keys, "b")
    await append(redis, keys, 1, envelopes.encode(Record(seq=1, chunks=[b"{}"])), ttl_s=60)
    writer = ReplyWriter(redis, keys, reply_ttl_s=60, consumer="b")
    envelope = Envelope("rid", KIND_CHAT, "g", True, 2**62, 0, "door", "default", b"{}")
    job = Job(envelope, "default", entry, deliveries=2, taken_from="a")
    with pytest.raises(ReplyTaken):
        await writer.write(job, Record(seq=1, chunks=[b"{}"]))
    assert await owner(redis, keys, entry) == "a"
    assert await redis_streams.renew_held(redis, keys, "default", "a", [entry]) == []
    assert await redis_streams.renew_held(redis, keys, "default", "b", [entry]) == [entry]
    await writer.aclose()


async def test_a_worker_beaten_by_a_finished_reply_acks_it(redis: Redis, keys: Keys) -> None:
    entry = await held_entry(redis, keys, "a")
    done = envelopes.encode(Record(seq=1, end=envelopes.DONE))
    await append(redis, keys, 1, done, ttl_s=60)
    writer = ReplyWriter(redis, keys, reply_ttl_s=60, consumer="a")
    envelope = Envelope("rid", KIND_CHAT, "g", True, 2**62, 0, "door", "default", b"{}")
    with pytest.raises(ReplyTaken):
        await writer.write(Job(envelope, "default", entry), Record(seq=1, chunks=[b"{}"]))
    assert await owner(redis, keys, entry) is None  # settled: acknowledged
    await writer.aclose()


async def test_a_take_over_claims_only_what_the_silent_consumer_still_holds(
    redis: Redis, keys: Keys
) -> None:
    entry = await held_entry(redis, keys, "dead")
    taken = await redis_streams.take_over(redis, keys, "default", "dead", "me", 10)
    assert [(e, d) for e, _, d in taken.entries] == [(entry, 2)] and not taken.has_more
    again = await redis_streams.take_over(redis, keys, "default", "dead", "other", 10)
    assert again.entries == [] and await owner(redis, keys, entry) == "me"
    consumers: Any = await redis.xinfo_consumers(keys.lane("default"), redis_streams.GROUP)
    assert "dead" not in {c["name"].decode() for c in consumers}  # it left the group
