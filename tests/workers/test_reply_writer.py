"""How a worker reads an upstream body and writes a reply under the reply cap
(`switchboard_settings.max_reply_bytes`, issue #13 item 2)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from redis.asyncio import Redis

from workers import messages, streams
from workers.errors import UpstreamResponseTooLarge
from workers.http import HttpClient
from workers.jobs import Job, ReplyWriter
from workers.messages import Envelope, Record
from workers.streams import Keys


def new_job(request_id: str = "rid") -> Job:
    now_ms = int(time.time() * 1000)
    envelope = Envelope(
        request_id=request_id,
        kind=messages.KIND_CHAT,
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
    rows = await streams.read_records(redis, keys, "rid")
    records = [messages.decode_record(raw) for _, raw in rows]
    assert [r.chunks for r in records] == [[b"x" * 60], []]
    assert records[-1].end == messages.ERROR and records[-1].status == 502
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
