"""A large non-stream reply is written as several records, not one Redis value (issue #13,
item 3), and reaches the client whole: from the live relay and from a resume."""

from __future__ import annotations

import asyncio
import json
import math
import time

import aiohttp
from redis.asyncio import Redis

from tests.broker.harness import (
    FAST_CLAIMS,
    make_config,
    post,
    service,
    start_worker,
    wait_until,
)
from tests.conftest import RoundTrips
from workers import envelopes, redis_streams
from workers.envelopes import Record, decode_envelope, decode_record
from workers.redis_streams import Keys
from workers.runtime.jobs import PART_BYTES
from workers.testing.large import filler_text
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]
SIZE = 3_000_000
MODELS = f"""\
- model_name: big
  litellm_params:
    model: openai/gpt-4o-mini~reply_bytes={SIZE}
    api_base: {{base}}
    api_key: sk-fake
"""


async def test_a_3_mb_reply_is_stored_as_several_records_and_relayed_whole(
    fake: FakeUpstream, namespace: str, redis: Redis, round_trips: RoundTrips
) -> None:
    base = fake.base_url + "/v1"
    config = make_config(base, namespace, extra_models=MODELS.format(base=base))
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        body = {"model": "big", "messages": HELLO}
        before, started = round_trips.count, time.monotonic()
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            request_id = response.headers["x-request-id"]
            assert response.headers["x-switchboard-deployment"] == "big[0]"
            raw = await response.read()
        trips, elapsed = round_trips.count - before, time.monotonic() - started
        # Resumable like any reply: the whole body as one event, with the last record's id.
        url = f"{door.url}/v1/streams/{request_id}"
        async with http.get(url, params={"after": "0"}) as response:
            assert response.status == 200
            replayed = await response.read()
    content = json.loads(raw)["choices"][0]["message"]["content"]
    assert len(content) > SIZE - 1000
    assert content == filler_text(len(content))  # every piece, in order
    rows = await redis_streams.read_records(redis, Keys(namespace), request_id)
    records = [decode_record(record) for _, record in rows]
    assert len(records) == 3 == -(-len(raw) // PART_BYTES)
    assert [r.end for r in records] == [envelopes.PART, envelopes.PART, envelopes.RESPONSE]
    assert [r.seq for r in records] == [1, 2, 3]
    assert all(len(r.body) <= PART_BYTES for r in records)
    assert b"".join(r.body for r in records) == raw
    assert records[-1].meta is not None and records[-1].meta.deployment == "big[0]"
    assert replayed == b"id: 3\ndata: " + raw + b"\n\n"
    # The parts cost one write each (the worker) and one read (the front door's gap fill);
    # a small reply's count is unchanged (tests/broker/test_service_flow.py). The monitor,
    # the heartbeats and the watch for dead workers each go every 0.25 s: the allowance.
    timed = 3 * math.ceil(elapsed / 0.25)
    assert trips <= 3 + len(records) + timed, (trips, elapsed)


async def test_a_response_cut_off_after_some_parts_is_answered_worker_lost_not_rerun(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(fake.base_url + "/v1", namespace, settings=FAST_CLAIMS)
    keys = Keys(namespace)
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        call = asyncio.create_task(post(http, door.url, {"model": "gpt-test", "messages": HELLO}))

        async def queued() -> bool:
            return int(await redis.xlen(keys.lane("default"))) == 1

        await wait_until(queued)
        # A worker takes the entry, writes the first part of a large response, and dies.
        [(_, _, raw)] = await redis_streams.read_requests(
            redis, keys, "ghost", ["default"], 1, None
        )
        request_id = decode_envelope(raw).request_id
        part = envelopes.encode(Record(seq=1, end=envelopes.PART, body=b'{"id":'))
        pipe = redis.pipeline(transaction=False)
        redis_streams.append_record(
            pipe, keys, request_id, 1, part, reply_to=door.front.id, ttl_s=60, publish=False
        )
        await pipe.execute()
        worker = await start_worker(config)
        try:
            status, body, _response = await asyncio.wait_for(call, 20)
        finally:
            await worker.stop()
    assert status == 502, body
    assert body["error"]["code"] == "worker_lost"
    assert "part of its response was written" in body["error"]["message"]
    assert fake.request_count == 0  # not run again: its parts would be joined to the new ones
