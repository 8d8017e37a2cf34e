"""Load-aware strategies through the service, with two workers deciding from the same
figures in Redis: least-busy and latency-based routing against deployments of unequal speed."""

from __future__ import annotations

import aiohttp

from tests.broker.harness import service
from tests.broker.routing_setup import ask, ask_many, deployment, routing_config, served
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
