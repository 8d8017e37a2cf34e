"""Retries, fallbacks and cooldowns through the service: what the client sees in headers,
and cooldowns and in-flight counts shared by every worker through Redis."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from prometheus_client import generate_latest
from redis.asyncio import Redis

from tests.broker.harness import read_sse, service, wait_until
from tests.broker.routing_setup import HELLO, ask, deployment, exchange, routing_config, served
from tests.scrape import Scrape, scrape_url
from tests.waiting import clear_of_minute_boundary
from workers.redis_streams import Keys
from workers.routing.figures import read_figures
from workers.routing.redis_store import RedisFigures
from workers.routing.store import Limits
from workers.testing.server import FakeUpstream


async def test_headers_count_attempts_and_fallbacks_and_name_the_server(
    fake: FakeUpstream, namespace: str
) -> None:
    base = fake.base_url + "/v1"
    models = [
        deployment("flaky", base, "m~status=500"),
        deployment("small", base, "m~status=context_window"),
        deployment("backup", base, "m"),
        deployment("alone", base, "m~status=503"),
    ]
    config = routing_config(
        namespace,
        models,
        num_retries=1,
        retry_after=0.01,
        fallbacks=[{"flaky": ["backup"]}],
        context_window_fallbacks=[{"small": ["backup"]}],
    )
    async with service(config) as (doors, [worker]), aiohttp.ClientSession() as session:
        url = doors[0].url
        flaky = await ask(session, url, "flaky")
        small = await ask(session, url, "small")
        alone = await ask(session, url, "alone")
        door_metrics = await scrape_url(session, url + "/metrics")
    worker_metrics = Scrape(generate_latest(worker.worker.metrics.registry).decode())
    # The metrics say what the headers say: the front door by the group the client asked
    # for, the worker by the group it moved to.
    assert door_metrics.value("switchboard_fallbacks_total", model_group="flaky") == 1
    assert door_metrics.value("switchboard_fallbacks_total", model_group="small") == 1
    assert (
        door_metrics.value("switchboard_retries_total", model_group="flaky", deployment="backup[0]")
        == 2
    )
    fallbacks = "switchboard_worker_fallbacks_total"
    assert worker_metrics.value(fallbacks, model_group="flaky", fallback_group="backup") == 1
    assert worker_metrics.value(fallbacks, model_group="small", fallback_group="backup") == 1
    assert (flaky.status, flaky.deployment, flaky.attempts, flaky.fallbacks) == (
        200,
        "backup[0]",
        "3",
        "1",
    )
    # A context-window error is not retried; it goes straight to the larger model.
    assert (small.status, small.deployment, small.attempts, small.fallbacks) == (
        200,
        "backup[0]",
        "2",
        "1",
    )
    # A failure that exhausted its retries says so too.
    assert (alone.status, alone.deployment, alone.attempts, alone.fallbacks) == (
        503,
        "alone[0]",
        "2",
        "0",
    )
    assert fake.state.model_counts["m~status=500"] == 2


async def test_a_429_is_retried_after_its_retry_after_and_headers_count_the_attempts(
    fake: FakeUpstream, namespace: str
) -> None:
    base = fake.base_url + "/v1"
    # Without Retry-After the first retry would wait 0.25-0.5 s (backoff with jitter).
    plain = "m~status=429~retry_after=1~fail_first=1"
    streamed = "m~status=429~retry_after=1~fail_first=1~chunks=2"
    models = [deployment("limited", base, plain), deployment("limited-stream", base, streamed)]
    config = routing_config(namespace, models, num_retries=2, retry_after=0)
    async with service(config, workers=2) as (doors, _), aiohttp.ClientSession() as session:
        url = doors[0].url
        reply = await ask(session, url, "limited")
        body = {"model": "limited-stream", "messages": HELLO, "stream": True}
        async with session.post(url + "/v1/chat/completions", json=body) as response:
            stream_headers = response.headers
            events = await read_sse(response)
    assert (reply.status, reply.deployment, reply.attempts, reply.fallbacks) == (
        200,
        "limited[0]",
        "2",
        "0",
    )
    # A stream that had sent nothing is retried the same way.
    assert events[-1][1] == "[DONE]"
    assert stream_headers["x-switchboard-attempts"] == "2"
    for model in (plain, streamed):
        arrivals = [r.received_s for r in fake.state.requests if r.json["model"] == model]
        assert len(arrivals) == 2
        assert arrivals[1] - arrivals[0] >= 0.99, arrivals


async def test_cooldown_is_cluster_wide_and_expires(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    base = fake.base_url + "/v1"
    bad = "m~status=500"
    models = [deployment("cd", base, bad, id="bad"), deployment("cd", base, "m", id="good")]
    config = routing_config(
        namespace,
        models,
        routing_strategy="round-robin",
        num_retries=1,
        retry_after=0,
        allowed_fails=1,
        cooldown_time=4,
    )
    keys = Keys(namespace)
    async with service(config, workers=2) as (doors, _), aiohttp.ClientSession() as session:
        url = doors[0].url

        async def cooled() -> bool:
            figures = await read_figures(redis, keys, {"cd": ["bad", "good"]})
            return figures.get("cd", "bad").is_cooling_down

        # Round-robin reaches `bad` every other attempt; its second failure cools it down.
        while not await cooled():
            served([await ask(session, url, "cd")])
        assert fake.state.model_counts[bad] == 2
        # Any worker, even one that never saw a failure, now keeps off it.
        stranger = RedisFigures(redis, keys, "stranger")
        assert await stranger.admit("cd", "bad", Limits(), 1) == "cooldown"
        replies = await asyncio.gather(*(ask(session, url, "cd") for _ in range(8)))
        assert served(replies) == {"good": 8}
        assert {reply.attempts for reply in replies} == {"1"}
        assert fake.state.model_counts[bad] == 2
        # After cooldown_time it is tried again.
        await wait_until(lambda: _not(cooled), timeout_s=15)
        for _ in range(2):
            await ask(session, url, "cd")
        assert fake.state.model_counts[bad] == 3


async def _not(predicate: object) -> bool:
    return not await predicate()  # type: ignore[operator]


async def test_a_stream_is_not_retried_once_its_first_chunk_was_sent(
    fake: FakeUpstream, namespace: str
) -> None:
    base = fake.base_url + "/v1"
    broken = "m~stream_error_after=2~chunk_delay=0.05"
    models = [deployment("midway", base, broken), deployment("backup", base, "m")]
    config = routing_config(namespace, models, num_retries=2, fallbacks=[{"midway": ["backup"]}])
    async with service(config) as (doors, _), aiohttp.ClientSession() as session:
        body = {"model": "midway", "messages": HELLO, "stream": True}
        async with session.post(doors[0].url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            assert response.headers["x-switchboard-attempts"] == "1"
            events = await read_sse(response)
    data = [json.loads(d) for _, d in events if d != "[DONE]"]
    assert any(event.get("choices") for event in data)
    assert "error" in data[-1]
    assert (fake.state.model_counts[broken], fake.state.model_counts["m"]) == (1, 0)


async def test_a_stream_failing_before_its_first_chunk_falls_back(
    fake: FakeUpstream, namespace: str
) -> None:
    base = fake.base_url + "/v1"
    models = [deployment("down", base, "m~status=503"), deployment("backup", base, "m")]
    config = routing_config(namespace, models, fallbacks=[{"down": ["backup"]}])
    async with service(config) as (doors, _), aiohttp.ClientSession() as session:
        body = {"model": "down", "messages": HELLO, "stream": True}
        async with session.post(doors[0].url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            assert response.headers["x-switchboard-deployment"] == "backup[0]"
            assert response.headers["x-switchboard-fallbacks"] == "1"
            events = await read_sse(response)
    assert events[-1][1] == "[DONE]"


async def test_finished_requests_leave_nothing_in_flight(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    base = fake.base_url + "/v1"
    models = [
        deployment("g", base, "m", id="ok"),
        deployment("g", base, "m~status=500", id="failing"),
        deployment("g", base, "m~stream_error_after=1~chunk_delay=0.02", id="midway"),
    ]
    config = routing_config(namespace, models, routing_strategy="round-robin")
    await clear_of_minute_boundary()
    async with service(config, workers=2) as (doors, _), aiohttp.ClientSession() as session:
        for stream in (False, True, True, False, True, True):
            await exchange(session, doors[0].url, "g", stream)
        figures = await read_figures(redis, Keys(namespace), {"g": ["ok", "failing", "midway"]})
    assert [figures.get("g", name).in_flight for name in ("ok", "failing", "midway")] == [0, 0, 0]
    assert figures.get("g", "ok").rpm_used >= 2


async def test_a_single_deployment_group_counts_without_waiting_and_leaves_nothing_in_flight(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    # A group's only deployment, without limits, is admitted without a round trip of its own;
    # the counts must still come out right, for plain, streamed, failed and concurrent calls.
    base = fake.base_url + "/v1"
    models = [
        deployment("solo", base, "m", id="s"),
        deployment("solo-failing", base, "m~status=500", id="f"),
    ]
    config = routing_config(namespace, models)
    await clear_of_minute_boundary()
    async with service(config, workers=2) as (doors, _), aiohttp.ClientSession() as session:
        url = doors[0].url
        await asyncio.gather(*(exchange(session, url, "solo", i % 2 == 0) for i in range(12)))
        await asyncio.gather(*(exchange(session, url, "solo-failing", False) for _ in range(3)))
        figures = await read_figures(redis, Keys(namespace), {"solo": ["s"], "solo-failing": ["f"]})
    assert (figures.get("solo", "s").in_flight, figures.get("solo", "s").rpm_used) == (0, 12)
    assert (
        figures.get("solo-failing", "f").in_flight,
        figures.get("solo-failing", "f").rpm_used,
    ) == (
        0,
        3,
    )
