"""/metrics of every process shows the routing figures: a front door and two worker
processes, each with its own metrics port, scraped after traffic that retried, cooled a
deployment down and measured latency. The front door shows the cluster's figures and the
per-request histograms by deployment; each worker shows the figures its last decision read
and the decisions, failures, retries and cooldowns it made."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.broker.harness import read_sse, wait_until
from tests.broker.processes import free_port, switchboard, wait_ready
from tests.broker.routing_setup import HELLO, Reply, ask, deployment, routing_yaml
from tests.redis_helpers import REDIS_URL
from tests.scrape import Scrape, scrape_url
from workers.redis_streams import Keys
from workers.routing.figures import read_figures
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.slow

BAD = "m~status=500"


async def scrape(session: aiohttp.ClientSession, port: int) -> Scrape:
    return await scrape_url(session, f"http://127.0.0.1:{port}/metrics")


def total(scrapes: list[Scrape], name: str, **labels: str) -> float:
    return sum(s.get(name, **labels) or 0.0 for s in scrapes)


@contextlib.asynccontextmanager
async def cluster_with_metrics(
    tmp_path: Path, namespace: str, models: list[dict[str, Any]], **router: Any
) -> AsyncIterator[tuple[str, int, list[int]]]:
    """`switchboard serve` and two `switchboard worker`s, each with a metrics port; yields
    the front door's URL, its metrics port and the workers' metrics ports."""
    path = tmp_path / "config.yaml"
    path.write_text(routing_yaml(namespace, models, **router))
    port, door_metrics = free_port(), free_port()
    worker_metrics = [free_port(), free_port()]
    config = ("--config", str(path))
    async with contextlib.AsyncExitStack() as stack:
        door = await stack.enter_async_context(
            switchboard(
                "serve",
                *config,
                "--port",
                str(port),
                "--metrics-port",
                str(door_metrics),
                directory=tmp_path,
                redis_url=REDIS_URL,
                name="serve",
            )
        )
        workers = [
            await stack.enter_async_context(
                switchboard(
                    "worker",
                    *config,
                    "--metrics-port",
                    str(metrics_port),
                    directory=tmp_path,
                    redis_url=REDIS_URL,
                    name=f"worker{i}",
                )
            )
            for i, metrics_port in enumerate(worker_metrics)
        ]
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, workers=2, processes=(door, *workers))
        yield url, door_metrics, worker_metrics


async def test_every_process_exports_the_routing_figures_it_decided_from(
    fake: FakeUpstream, namespace: str, redis: Redis, tmp_path: Path
) -> None:
    base = fake.base_url + "/v1"
    models = [
        deployment("g", base, "m~latency=0.02", id="ok"),
        deployment("g", base, BAD, id="bad"),
    ]
    keys = Keys(namespace)

    async def figures() -> Any:
        return (await read_figures(redis, keys, {"g": ["ok", "bad"]})).groups["g"]

    async def is_cooling() -> bool:
        return bool((await figures())["bad"].is_cooling_down)

    async def has_ttft() -> bool:
        return (await figures())["ok"].ttft_ms is not None

    async with (
        cluster_with_metrics(
            tmp_path,
            namespace,
            models,
            routing_strategy="round-robin",
            num_retries=1,
            retry_after=0,
            allowed_fails=1,
            cooldown_time=120,
        ) as (url, door_port, worker_ports),
        aiohttp.ClientSession() as session,
    ):
        replies: list[Reply] = []
        # Round-robin reaches `bad` every other attempt; its second failure cools it down.
        async with asyncio.timeout(30):
            while not await is_cooling():
                replies.append(await ask(session, url, "g"))
        body = {"model": "g", "messages": HELLO, "stream": True}
        async with session.post(url + "/v1/chat/completions", json=body) as response:
            assert response.headers["x-switchboard-deployment"] == "ok"
            assert (await read_sse(response))[-1][1] == "[DONE]"
        await wait_until(has_ttft, timeout_s=10)
        # Decided after the cooldown and the stream: the figures these read show both.
        replies += [await ask(session, url, "g") for _ in range(2)]
        await wait_until(lambda: _door_is_up_to_date(session, door_port), timeout_s=10)
        door = await scrape(session, door_port)
        workers = [await scrape(session, port) for port in worker_ports]

    assert {(r.status, r.deployment) for r in replies} == {(200, "ok")}
    attempts = sum(int(r.attempts or 0) for r in replies) + 1  # + the stream's one
    retried = sum(1 for r in replies if r.attempts == "2")
    assert retried == fake.state.model_counts[BAD] == 2
    check_front_door(door, requests=len(replies) + 1, retried=retried)
    check_workers(workers, attempts=attempts)


async def _door_is_up_to_date(session: aiohttp.ClientSession, port: int) -> bool:
    """The front door's monitor (every 0.25 s) read Redis after the last request ended."""
    door = await scrape(session, port)
    cooldown = door.get(
        "switchboard_deployment_cooldown_remaining_seconds", model_group="g", deployment="bad"
    )
    ok = {"model_group": "g", "deployment": "ok"}
    return (
        cooldown is not None
        and cooldown > 0
        and door.get("switchboard_deployment_in_flight_requests", **ok) == 0
        and (door.get("switchboard_deployment_ttft_average_seconds", **ok) or 0) > 0
    )


def check_front_door(door: Scrape, *, requests: int, retried: int) -> None:
    ok = {"model_group": "g", "deployment": "ok"}
    bad = {"model_group": "g", "deployment": "bad"}
    # Cluster-wide figures, read from Redis.
    assert 0 < door.value("switchboard_deployment_cooldown_remaining_seconds", **bad) <= 120
    assert door.value("switchboard_deployment_cooldown_remaining_seconds", **ok) == 0
    assert door.value("switchboard_deployment_in_flight_requests", **ok) == 0
    assert door.value("switchboard_deployment_ttft_average_seconds", **ok) > 0
    assert door.value("switchboard_deployment_latency_per_token_average_seconds", **ok) > 0
    assert math.isnan(door.value("switchboard_deployment_ttft_average_seconds", **bad))
    # Per clock minute, so a minute turning mid-test may have reset it: at most both
    # failures (tests/workers/routing/test_figures_store.py checks the exact count).
    assert door.value("switchboard_deployment_minute_failures", **ok) == 0
    assert door.value("switchboard_deployment_minute_failures", **bad) <= 2
    # Per-request figures, by the deployment that served.
    assert door.value("switchboard_request_duration_seconds_count", **ok) == requests
    assert door.value("switchboard_time_to_first_token_seconds_count", **ok) == 1
    assert door.value("switchboard_retries_total", **ok) == retried
    assert door.value("switchboard_requests_total", status="200", **ok) == requests


def check_workers(workers: list[Scrape], *, attempts: int) -> None:
    ok = {"model_group": "g", "deployment": "ok"}
    bad = {"model_group": "g", "deployment": "bad"}
    decisions = "switchboard_worker_routing_decisions_total"
    assert total(workers, decisions, **ok) + total(workers, decisions, **bad) == attempts
    assert total(workers, decisions, **bad) == 2
    failures = "switchboard_worker_deployment_failures_total"
    assert total(workers, failures, error_class="InternalServerError", **bad) == 2
    assert total(workers, "switchboard_worker_retries_total", **bad) == 2
    assert total(workers, "switchboard_worker_cooldowns_total", **bad) == 1
    assert total(workers, "switchboard_worker_cooldowns_total", **ok) == 0
    # The worker that decided last read the figures after the cooldown and the stream.
    last = max(workers, key=lambda s: _read_at(s))
    assert 0 < last.value("switchboard_worker_routing_cooldown_remaining_seconds", **bad) <= 120
    assert last.value("switchboard_worker_routing_cooldown_remaining_seconds", **ok) == 0
    assert last.value("switchboard_worker_routing_ttft_average_seconds", **ok) > 0
    assert last.value("switchboard_worker_routing_latency_per_token_average_seconds", **ok) > 0
    assert last.value("switchboard_worker_routing_in_flight_requests", **ok) >= 0
    assert last.value("switchboard_worker_routing_minute_requests", **ok) >= 0
    assert last.value("switchboard_worker_routing_minute_tokens", **ok) >= 0


def _read_at(scrape: Scrape) -> float:
    return scrape.get("switchboard_worker_routing_figures_timestamp_seconds", model_group="g") or 0
