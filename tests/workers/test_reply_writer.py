"""How a worker reads an upstream body and writes a reply under the reply cap
(`switchboard_settings.max_reply_bytes`, issue #13 item 2)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from redis.asyncio import Redis

from workers import envelopes, redis_streams
from workers.envelopes import Envelope, Record
from workers.errors import UpstreamResponseTooLarge
from workers.http import HttpClient
from workers.redis_streams import Keys
from workers.runtime.jobs import Job, ReplyTaken, ReplyWriter


def new_job(request_id: str = "rid") -> Job:
    now_ms = int(time.time() * 1000)
    envelope = Envelope(
        request_id=request_id,
        kind=envelopes.KIND_CHAT,
        model_group="g",
        stream=True,
        deadline_ms=now_ms + 60_000,
        enqueued_ms=now_ms,
        reply_to="door",
        lane="default",
        body=b"{}",
    )
    return Job(envelope, "default", b"0-1")


async def test_a_reply_growing_past_the_cap_is_refused_before_it_is_written(
    redis: Redis, keys: Keys
) -> None:
    writer = ReplyWriter(redis, keys, reply_ttl_s=60, max_reply_bytes=100)
    job = new_job()
    await writer.write(job, Record(seq=job.seq, chunks=[b"x" * 60]))
    with pytest.raises(UpstreamResponseTooLarge, match="max_reply_bytes"):
        await writer.write(job, Record(seq=job.seq, chunks=[b"y" * 60]))
    # The error itself always goes through, after what was written.
    await writer.write_error(job, UpstreamResponseTooLarge("too large"), None)
    rows = await redis_streams.read_records(redis, keys, "rid")
    records = [envelopes.decode_record(raw) for _, raw in rows]
    assert [r.chunks for r in records] == [[b"x" * 60], []]
    assert records[-1].end == envelopes.ERROR and records[-1].status == 502
    await writer.aclose()


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"z" * int(request.query["n"]))

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(int(request.query["n"]) // 100):
            await response.write(b"z" * 100)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/sized", sized)
    app.router.add_get("/chunked", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize("path", ["/sized", "/chunked"])
async def test_an_upstream_body_is_read_up_to_the_cap_and_refused_past_it(
    upstream: str, path: str
) -> None:
    async with HttpClient(max_reply_bytes=1000) as http:
        async with http.session.get(f"{upstream}{path}?n=1000") as response:
            assert await http.read_body(response, "openai", "m") == b"z" * 1000
        async with http.session.get(f"{upstream}{path}?n=1100") as response:
            with pytest.raises(UpstreamResponseTooLarge) as caught:
                await http.read_body(response, "openai", "m")
        assert caught.value.provider == "openai"
        assert "openai sent a reply larger than 1000 bytes" in caught.value.message
        assert caught.value.code == "upstream_response_too_large"
        assert caught.value.http_status == 502 and not caught.value.retryable


async def test_a_large_response_is_stored_in_parts_and_only_its_end_is_published(
    redis: Redis, keys: Keys
) -> None:
    writer = ReplyWriter(redis, keys, reply_ttl_s=60, part_bytes=10)
    job = new_job()
    listener = redis.pubsub()
    await listener.subscribe(keys.live_channel("door"))
    await listener.get_message(timeout=1)  # the subscribe confirmation
    try:
        body = bytes(range(65, 65 + 26)) + b"0123456789"  # 36 bytes: 3 parts and an end
        await writer.write(job, Record(seq=job.seq, end=envelopes.RESPONSE, body=body))
        heard = None
        async with asyncio.timeout(5):
            while heard is None:
                heard = await listener.get_message(timeout=1)
        assert await listener.get_message(timeout=0.2) is None
    finally:
        await listener.aclose()
    rows = await redis_streams.read_records(redis, keys, "rid")
    records = [envelopes.decode_record(raw) for _, raw in rows]
    assert [(r.seq, r.end) for r in records] == [
        (1, envelopes.PART),
        (2, envelopes.PART),
        (3, envelopes.PART),
        (4, envelopes.RESPONSE),
    ]
    assert envelopes.join_parts([r.body for r in records[:-1]], records[-1]).body == body
    assert heard["data"] == b"rid|" + envelopes.encode(records[-1])
    assert job.seq == 5 and job.reply_bytes == len(body)
    assert 0 < await redis.ttl(keys.reply("rid")) <= 60
    await writer.aclose()


async def test_the_parts_of_a_response_stop_at_a_taken_sequence_number(
    redis: Redis, keys: Keys
) -> None:
    writer = ReplyWriter(redis, keys, reply_ttl_s=60, part_bytes=10)
    job = new_job()
    lane = keys.lane("default")
    await redis_streams.ensure_groups(redis, keys, ["default"])
    job.entry = await redis.xadd(lane, {"e": b"x"})
    await redis.xreadgroup(redis_streams.GROUP, "w", {lane: ">"})
    # The front door recorded the client's cancellation at the first sequence number (parts
    # are not relayed live, so it had seen none).
    pipe = redis.pipeline(transaction=False)
    cancelled = envelopes.encode(Record(seq=1, end=envelopes.CANCELLED))
    redis_streams.cancel(pipe, keys, "rid", seq=1, record=cancelled, ttl_s=60)
    await pipe.execute()
    with pytest.raises(ReplyTaken):
        await writer.write(job, Record(seq=job.seq, end=envelopes.RESPONSE, body=b"z" * 36))
    rows = await redis_streams.read_records(redis, keys, "rid")
    assert [envelopes.decode_record(raw).end for _, raw in rows] == [envelopes.CANCELLED]
    # The request is settled: its entry is acked and deleted, nothing is left pending.
    assert (await redis.xpending(lane, redis_streams.GROUP))["pending"] == 0
    assert await redis.xlen(lane) == 0
    await writer.aclose()
