"""Durable, resumable replies: a client that drops resumes by `Last-Event-ID` on another
front door; a client that drops with no grace cancels the upstream call; a finished reply
stream expires after `reply_ttl_s`."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.broker.harness import make_config, read_sse, service
from tests.redis_helpers import unreachable_redis
from tests.waiting import eventually
from workers import envelopes, redis_streams
from workers.envelopes import decode_record
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]
HANG = """\
- model_name: hang
  litellm_params:
    model: openai/gpt-4o-mini~hang
    api_base: {base}
    api_key: sk-fake
"""


async def test_a_dropped_stream_resumes_on_another_front_door_with_exactly_the_missing_events(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    # A grace long enough that the first front door never cancels before the resume claims it.
    config = make_config(fake.base_url + "/v1", namespace, settings={"disconnect_grace_s": 3})
    body = {"model": "slow", "messages": HELLO, "stream": True}
    async with service(config, front_doors=2) as ([first, second], _):
        async with aiohttp.ClientSession() as http:
            async with http.post(first.url + "/v1/chat/completions", json=body) as response:
                assert response.status == 200
                request_id = response.headers["x-request-id"]
                before = await read_sse(response, limit=3)
                response.close()  # the client drops mid-stream
        last_id = before[-1][0]
        assert last_id == "3"
        async with aiohttp.ClientSession() as http:
            url = f"{second.url}/v1/streams/{request_id}"
            async with http.get(url, headers={"Last-Event-ID": last_id}) as response:
                assert response.status == 200
                assert response.headers["x-request-id"] == request_id
                after = await read_sse(response)
            # The whole reply, replayed from Redis, is exactly the two parts joined.
            async with http.get(url, params={"after": "0"}) as response:
                whole = await read_sse(response)
    assert [event_id for event_id, _ in after][0] == "4"
    assert before + after == whole
    assert [int(event_id or 0) for event_id, _ in whole] == list(range(1, len(whole) + 1))
    assert whole[-1][1] == "[DONE]"
    # The resume claimed the request: the first front door did not cancel it upstream.
    state = await redis.get(Keys(namespace).state(request_id))
    assert state == f"resumed:{second.front.id}".encode()
    assert fake.disconnects == [] and fake.request_count == 1


async def test_resume_of_an_unknown_request_is_404_in_openai_shape(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        async with http.get(door.url + "/v1/streams/req_nope") as response:
            assert response.status == 404
            body = await response.json()
    assert body["error"]["code"] == "stream_not_found"
    assert set(body["error"]) == {"message", "type", "param", "code"}


async def test_concurrent_resumes_of_an_unknown_request_are_all_404(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    # Found by tests/security/test_fuzz.py: a resume that lost the claim to another resume of
    # the same unknown id followed an empty reply until request_timeout_s (600 s here).
    config = make_config(fake.base_url + "/v1", namespace)
    url_of = "{}/v1/streams/req_{}".format
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:

        async def resume(index: int) -> int:
            async with http.get(url_of(door.url, "0" * 24)) as response:
                await response.read()
                return response.status

        async with asyncio.timeout(10):
            statuses = await asyncio.gather(*(resume(i) for i in range(20)))
    assert statuses == [404] * 20
    # An unknown id leaves nothing behind.
    assert await redis.exists(Keys(namespace).state("req_" + "0" * 24)) == 0


@pytest.mark.parametrize("case", ["non-stream", "stream before its first chunk", "mid-stream"])
async def test_disconnect_cancels_upstream_call(
    fake: FakeUpstream, namespace: str, redis: Redis, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        settings={"disconnect_grace_s": 0},
        extra_models=HANG.format(base=fake.base_url + "/v1"),
    )
    keys = Keys(namespace)
    lane = keys.lane("default")
    url_path = "/v1/chat/completions"
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        if case == "mid-stream":
            body = {"model": "slow", "messages": HELLO, "stream": True}
            async with http.post(door.url + url_path, json=body) as response:
                request_id = response.headers["x-request-id"]
                assert len(await read_sse(response, limit=2)) == 2
                response.close()  # the client goes away mid-stream
        else:
            body = {"model": "hang", "messages": HELLO, "stream": case != "non-stream"}
            call = asyncio.create_task(http.post(door.url + url_path, json=body))
            await asyncio.wait_for(fake.wait_for_requests(1), 10)
            call.cancel()  # the client goes away while the upstream call is in progress
            await asyncio.gather(call, return_exceptions=True)
            request_id = ""
        [gone] = await asyncio.wait_for(fake.wait_for_disconnects(1), 10)
        assert gone.model.startswith("gpt-4o-mini~")

        # Nothing is left in the queue or pending with the worker.
        async def settled() -> bool:
            depth = int(await redis.xlen(lane))
            pending = int((await redis.xpending(lane, redis_streams.GROUP))["pending"])
            return depth == 0 and pending == 0

        await eventually(settled, what="an empty lane with nothing pending")
    [reply] = [key async for key in redis.scan_iter(match=keys.reply("*"))]
    assert request_id in reply.decode()
    records = [
        decode_record(fields[redis_streams.RECORD_FIELD]) for _, fields in await redis.xrange(reply)
    ]
    # The reply stream records the cancellation as its end, after whatever was sent.
    assert records[-1].end == envelopes.CANCELLED
    assert all(not r.is_final for r in records[:-1])
    # A client leaving is routine, not an error.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_queued_request_whose_client_leaves_is_never_run(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    """The worker is busy (one slot) when the second client leaves; the cancellation
    reaches it on the cancel channel, and it drops the entry when it reads it."""
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        settings={"disconnect_grace_s": 0, "worker_concurrency": 1},
        extra_models=HANG.format(base=fake.base_url + "/v1"),
    )
    keys = Keys(namespace)
    lane = keys.lane("default")
    url = "/v1/chat/completions"
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        busy = asyncio.create_task(
            http.post(door.url + url, json={"model": "hang", "messages": HELLO})
        )
        await asyncio.wait_for(fake.wait_for_requests(1), 10)
        left = asyncio.create_task(
            http.post(door.url + url, json={"model": "gpt-test", "messages": HELLO})
        )

        async def queued() -> bool:
            return int(await redis.xlen(lane)) == 2

        await eventually(queued, what="both requests in the lane")
        left.cancel()  # the second client leaves while its request waits in the lane
        await asyncio.gather(left, return_exceptions=True)

        async def cancellation_announced() -> bool:
            # Recorded (the request's state says so), then announced: the front door's
            # cancelling task ends once its record and its message are sent.
            states = [await redis.get(key) async for key in redis.scan_iter(keys.state("*"))]
            return states == [redis_streams.STATE_CANCELLED] and not door.front.cancellations

        await eventually(cancellation_announced, what="the left request's cancellation")
        busy.cancel()  # frees the worker's one slot
        await asyncio.gather(busy, return_exceptions=True)

        async def settled() -> bool:
            depth = int(await redis.xlen(lane))
            pending = int((await redis.xpending(lane, redis_streams.GROUP))["pending"])
            return depth == 0 and pending == 0

        await eventually(settled, what="an empty lane with nothing pending")
    assert fake.request_count == 1  # only the first request reached the provider


async def test_reply_stream_expires_after_reply_ttl(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(fake.base_url + "/v1", namespace, settings={"reply_ttl_s": 1})
    body = {"model": "gpt-test", "messages": HELLO}
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            request_id = response.headers["x-request-id"]
        reply = Keys(namespace).reply(request_id)
        assert 0 < await redis.pttl(reply) <= 1000

        async def expired() -> bool:
            return not await redis.exists(reply)

        await eventually(expired, what="the reply stream to expire")
        async with http.get(f"{door.url}/v1/streams/{request_id}") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "stream_not_found"


async def test_a_reply_stream_unreadable_for_a_while_does_not_end_a_live_stream(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    body = {"model": "slow", "messages": HELLO, "stream": True}
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            events = await read_sse(response, limit=2)
            hub = door.front.hub
            healthy = hub.redis
            hub.redis = unreachable_redis()
            try:
                # As after a lost subscription: every waiter must reread its reply stream.
                for waiter in hub.waiters.values():
                    waiter.mark_stale()
                events += await read_sse(response, limit=3)
            finally:
                await hub.redis.aclose()
                hub.redis = healthy
            events += await read_sse(response)
    assert [int(event_id or 0) for event_id, _ in events] == list(range(1, len(events) + 1))
    assert events[-1][1] == "[DONE]"


async def test_a_reply_relayed_whole_is_kept_only_delivered_reply_ttl_s(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    # Issue #22: answered traffic must not sit in Redis for reply_ttl_s; an interrupted
    # stream must (a resume needs it).
    settings = {"reply_ttl_s": 300, "delivered_reply_ttl_s": 5, "disconnect_grace_s": 3}
    config = make_config(fake.base_url + "/v1", namespace, settings=settings)
    keys = Keys(namespace)
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        delivered = []
        for body in (
            {"model": "gpt-test", "messages": HELLO},
            {"model": "gpt-test", "messages": HELLO, "stream": True},
        ):
            async with http.post(door.url + "/v1/chat/completions", json=body) as response:
                assert response.status == 200
                await response.read()
                delivered.append(response.headers["x-request-id"])
        stream = {"model": "slow", "messages": HELLO, "stream": True}
        async with http.post(door.url + "/v1/chat/completions", json=stream) as response:
            interrupted = response.headers["x-request-id"]
            await read_sse(response, limit=2)
            response.close()

        async def shortened() -> bool:
            ttls = [await redis.ttl(keys.reply(rid)) for rid in delivered]
            return all(0 < ttl <= 5 for ttl in ttls)

        await eventually(shortened, what="the delivered replies' TTL to be shortened")

        async def finished() -> bool:
            return await redis_streams.last_record(redis, keys, interrupted) is not None

        await eventually(finished, what="the interrupted stream to finish", timeout_s=15)
        await asyncio.sleep(0.6)  # past a flush of the delivered replies
        assert await redis.ttl(keys.reply(interrupted)) > 60
        # The delivered one is still readable (a late reconnect) until its short TTL ends.
        async with http.get(f"{door.url}/v1/streams/{delivered[1]}?after=0") as response:
            assert response.status == 200
