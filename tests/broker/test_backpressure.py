"""Backpressure, not collapse: a full queue refuses with 429 and Retry-After, a worker holds
no more entries than its concurrency, and a request nobody serves times out with 504."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from redis.asyncio import Redis

from tests.broker.harness import make_config, post, service, start_worker, wait_until
from tests.redis_helpers import unreachable_redis
from workers import redis_streams
from workers.envelopes import decode_record
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]
ERROR_FIELDS = {"message", "type", "param", "code"}


async def test_queue_past_its_depth_is_refused_with_429_and_retry_after(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        settings={"max_queue_depth": 2, "disconnect_grace_s": 0},
    )
    lane = Keys(namespace).lane("default")
    body = {"model": "gpt-test", "messages": HELLO}
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        queued = [asyncio.create_task(post(http, door.url, body)) for _ in range(2)]

        async def both_queued() -> bool:
            return int(await redis.xlen(lane)) == 2

        await wait_until(both_queued)
        await door.front.monitor.refresh()
        status, refused, response = await post(http, door.url, body)
        assert status == 429
        assert set(refused["error"]) == ERROR_FIELDS
        assert refused["error"]["code"] == "queue_full"
        assert refused["error"]["type"] == "rate_limit_error"
        assert int(response.headers["Retry-After"]) >= 1
        assert await redis.xlen(lane) == 2  # the refused request was never enqueued

        # The burst waited in Redis: a worker that arrives serves it, and admission reopens.
        worker = await start_worker(config)
        try:
            results = await asyncio.wait_for(asyncio.gather(*queued), 20)
            assert [status for status, _, _ in results] == [200, 200]
            await door.front.monitor.refresh()
            status, _, _ = await post(http, door.url, body)
            assert status == 200
        finally:
            await worker.stop()


async def test_a_worker_never_holds_more_entries_than_its_concurrency(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    lane = Keys(namespace).lane("default")
    body = {"model": "slow", "messages": HELLO}  # 0.5 s each
    async with (
        service(config, concurrency=3) as ([door], [running]),
        aiohttp.ClientSession() as http,
    ):
        calls = [asyncio.create_task(post(http, door.url, body)) for _ in range(8)]
        held: list[int] = []
        waiting: list[int] = []
        async with asyncio.timeout(30):
            while not all(call.done() for call in calls):
                consumers: Any = await redis.xinfo_consumers(lane, redis_streams.GROUP)
                held.append(max((int(c["pending"]) for c in consumers), default=0))
                held.append(len(running.worker.jobs))
                waiting.append(int(await redis.xlen(lane)) - held[-2])
                await asyncio.sleep(0.01)
        results = await asyncio.gather(*calls)
    assert [status for status, _, _ in results] == [200] * 8
    assert max(held) == 3  # saturated, never past its slots
    assert max(waiting) > 0  # the rest waited in Redis, not in the worker


async def test_a_request_nobody_serves_times_out_with_504(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(fake.base_url + "/v1", namespace, settings={"disconnect_grace_s": 0})
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        calls = [
            post(
                http,
                door.url,
                {"model": "gpt-test", "messages": HELLO, "stream": stream, "timeout": 0.2},
            )
            for stream in (False, True)
        ]
        results = await asyncio.wait_for(asyncio.gather(*calls), 20)
        lane = Keys(namespace).lane("default")
        await wait_until(lambda: cancelled(redis, namespace, results))
        # The entries stay, so the group's lag stays countable: KEDA wakes workers on it.
        (group,) = await redis.xinfo_groups(lane)
        assert group["lag"] == 2

        # The front door gave up on them, so the worker that arrives later drops them unrun.
        worker = await start_worker(config)
        try:

            async def dropped() -> bool:
                return int(await redis.xlen(lane)) == 0

            await wait_until(dropped)
        finally:
            await worker.stop()
        assert fake.request_count == 0
        assert (await redis.xpending(lane, redis_streams.GROUP))["pending"] == 0
    for status, body, response in results:
        assert status == 504
        assert set(body["error"]) == ERROR_FIELDS
        assert body["error"]["type"] == "timeout_error"
        assert body["error"]["code"] == "deadline_exceeded"
        assert response.headers["x-request-id"] in body["error"]["message"]


async def cancelled(redis: Redis, namespace: str, results: list[Any]) -> bool:
    """Every request's reply stream ends with the front door's cancellation record."""
    for _status, _body, response in results:
        last = await redis_streams.last_record(
            redis, Keys(namespace), response.headers["x-request-id"]
        )
        if last is None or not decode_record(last).is_final:
            return False
    return True


async def test_an_unreachable_queue_is_503_with_retry_after(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        healthy = door.front.redis
        door.front.redis = unreachable_redis()
        try:
            status, body, response = await post(
                http, door.url, {"model": "gpt-test", "messages": HELLO}
            )
        finally:
            await door.front.redis.aclose()
            door.front.redis = healthy
    assert status == 503
    assert set(body["error"]) == ERROR_FIELDS
    assert body["error"]["code"] == "queue_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["x-request-id"]
