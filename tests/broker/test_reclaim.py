"""Claims on request entries: an entry delivered too often goes to the dead-letter stream and
its client gets an error, and a live worker renewing its claim keeps a long stream."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from redis.asyncio import Redis

from tests.broker.harness import (
    FAST_CLAIMS,
    make_config,
    post,
    read_sse,
    service,
    start_worker,
    wait_until,
)
from workers import redis_streams
from workers.envelopes import decode_envelope
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]
LONG = """\
- model_name: long
  litellm_params:
    model: openai/gpt-4o-mini~chunk_delay=0.1~chunks=30
    api_base: {base}
    api_key: sk-fake
"""


async def test_an_entry_read_and_never_acked_is_dead_lettered_and_its_client_told(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(
        fake.base_url + "/v1", namespace, settings={**FAST_CLAIMS, "max_deliveries": 1}
    )
    keys = Keys(namespace)
    lane = keys.lane("default")
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        calls = [
            asyncio.create_task(
                post(http, door.url, {"model": "gpt-test", "messages": HELLO, "stream": stream})
            )
            for stream in (False, True)
        ]

        async def both_queued() -> bool:
            return int(await redis.xlen(lane)) == 2

        await wait_until(both_queued)
        # A consumer reads both entries and dies without acking them (its first delivery).
        taken = await redis_streams.read_requests(redis, keys, "ghost", ["default"], 10, None)
        assert len(taken) == 2
        worker = await start_worker(config)
        try:
            results = await asyncio.wait_for(asyncio.gather(*calls), 20)
        finally:
            await worker.stop()
    for status, body, response in results:
        assert status == 503
        assert body["error"]["code"] == "dead_lettered"
        assert response.headers["x-request-id"] in body["error"]["message"]
    assert fake.request_count == 0  # never run a second time
    dead: Any = await redis.xrange(keys.dead_letter)
    request_ids = {
        decode_envelope(fields[redis_streams.ENVELOPE_FIELD]).request_id for _, fields in dead
    }
    assert request_ids == {response.headers["x-request-id"] for _, _, response in results}
    assert {fields[b"entry"] for _, fields in dead} == {entry for _, entry, _ in taken}
    assert await redis.xlen(lane) == 0
    assert (await redis.xpending(lane, redis_streams.GROUP))["pending"] == 0


async def test_a_long_stream_is_not_stolen_while_its_worker_renews_its_claim(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    # The stream runs ~3 s, three times claim_idle_ms; the idle worker tries to reclaim
    # every claim_idle_ms / 2.
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        settings=FAST_CLAIMS,
        extra_models=LONG.format(base=fake.base_url + "/v1"),
    )
    lane = Keys(namespace).lane("default")
    body = {"model": "long", "messages": HELLO, "stream": True}
    owners: set[str] = set()
    deliveries: set[int] = set()
    async with service(config, workers=2) as ([door], _), aiohttp.ClientSession() as http:
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            worker = response.headers["x-switchboard-worker"]
            events: list[tuple[str | None, str]] = []
            async for event in _events(response):
                events.append(event)
                for row in await redis.xpending_range(lane, redis_streams.GROUP, "-", "+", 10):
                    owners.add(row["consumer"].decode())
                    deliveries.add(int(row["times_delivered"]))
    assert owners == {worker} and deliveries == {1}
    assert fake.request_count == 1
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "This is a fake reply from gpt-4o-mini."
    assert [int(i or 0) for i, _ in events] == list(range(1, len(events) + 1))


async def _events(response: aiohttp.ClientResponse) -> Any:
    while True:
        batch = await read_sse(response, limit=1)
        if not batch:
            return
        yield batch[0]
