"""Strategies through the service, with two workers deciding from the same figures in Redis:
least-busy and latency-based routing against deployments of unequal speed, cost-based
routing against deployments of unequal price, one of which cools down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from redis.asyncio import Redis

from tests.broker.harness import service, wait_until
from tests.broker.routing_setup import ask, ask_many, deployment, routing_config, served
from workers.redis_streams import Keys
from workers.routing.figures import read_figures
from workers.testing.server import FakeUpstream
from workers.testing.state import Timing


async def test_least_busy_gives_the_faster_deployment_most_requests(
    fake: FakeUpstream, namespace: str
) -> None:
    base = fake.base_url + "/v1"
    models = [
        deployment("lb", base, "gpt-4o-mini~latency=0.03", id="fast"),
        deployment("lb", base, "gpt-4o-mini~latency=0.6", id="slow"),
    ]
    config = routing_config(namespace, models, routing_strategy="least-busy")
    async with service(config, workers=2) as (doors, _), aiohttp.ClientSession() as session:
        counts = served(await ask_many(session, doors[0].url, "lb", 40, concurrency=4))
    # Random choice would split evenly; keeping in-flight level sends the fast one far more.
    assert counts.keys() <= {"fast", "slow"} and counts["slow"] > 0, counts
    assert counts["fast"] >= 3 * counts["slow"], counts


async def test_latency_based_prefers_the_faster_and_shifts_when_it_slows(
    namespace: str,
) -> None:
    async with FakeUpstream(latency_s=0.01) as first, FakeUpstream(latency_s=0.25) as second:
        models = [
            deployment("lat", first.base_url + "/v1", "gpt-4o-mini", id="one"),
            deployment("lat", second.base_url + "/v1", "gpt-4o-mini", id="two"),
        ]
        config = routing_config(namespace, models, routing_strategy="latency-based-routing")
        async with service(config, workers=2) as (doors, _), aiohttp.ClientSession() as session:
            url = doors[0].url
            before = served([await ask(session, url, "lat") for _ in range(20)])
            first.state.timing = Timing(latency_s=0.4)
            second.state.timing = Timing(latency_s=0.01)
            after = served([await ask(session, url, "lat") for _ in range(20)])
    assert before["one"] >= 14, before
    assert after["two"] >= 12, after


def priced(usd_per_token: float) -> dict[str, float]:
    return {"input_cost_per_token": usd_per_token, "output_cost_per_token": usd_per_token}


async def test_cost_based_picks_the_cheapest_healthy_and_leaves_it_while_it_cools(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    base = fake.base_url + "/v1"
    # The cheapest fails its first two requests, then recovers.
    flaky = "m~status=500~fail_first=2"
    models = [
        deployment("cost", base, "m~latency=0", id="dear", **priced(3e-6)),
        deployment("cost", base, flaky, id="cheap", **priced(1e-6)),
        deployment("cost", base, "m", id="middle", **priced(2e-6)),
    ]
    config = routing_config(
        namespace,
        models,
        routing_strategy="cost-based-routing",
        num_retries=1,
        retry_after=0,
        allowed_fails=1,
        cooldown_time=8,
    )
    keys = Keys(namespace)

    async def cheap_cooldown_s() -> float:
        figures = await read_figures(redis, keys, {"cost": ["dear", "cheap", "middle"]})
        return figures.get("cost", "cheap").cooldown_s

    async with service(config, workers=2) as (doors, _), aiohttp.ClientSession() as session:
        url = doors[0].url
        # Each request tries the cheapest first; its failure sends the retry to the next
        # cheapest. The second failure is past allowed_fails, so it cools down.
        failing = [await ask(session, url, "cost") for _ in range(2)]
        assert [(r.status, r.deployment, r.attempts) for r in failing] == [
            (200, "middle", "2"),
            (200, "middle", "2"),
        ]
        assert await cheap_cooldown_s() > 4  # cooldown_time is 8 s; plenty left to test in
        # While it cools, no worker tries it: the cheapest healthy one serves, at once.
        cooling = await asyncio.gather(*(ask(session, url, "cost") for _ in range(6)))
        assert served(cooling) == {"middle": 6}
        assert {reply.attempts for reply in cooling} == {"1"}
        assert fake.state.model_counts[flaky] == 2
        # Back after cooldown_time, and the cheapest again.
        await wait_until(lambda: _is_zero(cheap_cooldown_s), timeout_s=20)
        recovered = [await ask(session, url, "cost") for _ in range(3)]
    assert served(recovered) == {"cheap": 3}
    assert fake.state.model_counts["m~latency=0"] == 0  # the dearest never served


async def _is_zero(read: Callable[[], Awaitable[float]]) -> bool:
    return await read() == 0
