"""/metrics and readiness say who uses the gateway and how (model groups, key aliases and
their spend, workers, Redis): on the API port only the master key or the metrics key sees
them, unless the operator opts out; the metrics port serves them and nothing of the API
(issue #13, item 8)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from broker.app import serve_front_door
from broker.config import Config, ConfigError, load_config_text
from tests.broker.harness import make_config, service, start_worker, wait_until
from tests.broker.processes import free_port
from tests.redis_helpers import REDIS_URL
from workers.runtime.worker_metrics import WorkerMetrics, metrics_endpoint
from workers.testing.server import FakeUpstream

MASTER = "sk-master-metrics-0123456789"
METRICS_KEY = "metrics-scraper-key-0123456789"
TEAM = "sk-team-metrics-0123456789"
START_S = 30.0
MODELS = "model_list: [{model_name: a, litellm_params: {model: openai/a}}]\n"


def keyed_config(fake: FakeUpstream, namespace: str, **settings: Any) -> Config:
    return make_config(
        fake.base_url + "/v1",
        namespace,
        settings={"api_keys": f"[{{alias: team, key: {TEAM}}}]", **settings},
        general=f"general_settings:\n  master_key: {MASTER}\n",
    )


async def get(url: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def test_api_port_metrics_need_the_master_or_metrics_key(
    fake: FakeUpstream, namespace: str
) -> None:
    config = keyed_config(fake, namespace, metrics_key=METRICS_KEY)
    async with service(config, workers=0) as ([door], _):
        for key in (None, TEAM, "sk-wrong-0123456789"):
            status, body = await get(door.url + "/metrics", key)
            assert status == 401, key
            assert body["error"]["code"] == "metrics_key_required"
        for key in (MASTER, METRICS_KEY):
            status, text = await get(door.url + "/metrics", key)
            assert status == 200
            assert "switchboard_queue_depth" in text


async def test_public_metrics_opens_the_api_port_metrics(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(keyed_config(fake, namespace, public_metrics="true"), workers=0) as (
        [door],
        _,
    ):
        status, text = await get(door.url + "/metrics")
        assert status == 200
        assert "switchboard_queue_depth" in text


async def test_unauthenticated_readiness_says_only_ready_or_not(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(keyed_config(fake, namespace), workers=1) as ([door], _):
        await wait_until(lambda: is_ready(door.url, MASTER), START_S)
        assert await get(door.url + "/health/readiness") == (200, {"status": "ready"})
        assert await get(door.url + "/health/readiness", TEAM) == (200, {"status": "ready"})
        status, detailed = await get(door.url + "/health/readiness", MASTER)
        assert detailed == {"draining": False, "redis": "ok", "live_workers": 1, "status": "ready"}
        door.front.is_draining = True
        assert await get(door.url + "/health/readiness") == (503, {"status": "not ready"})


async def is_ready(base_url: str, key: str | None = None) -> bool:
    return (await get(base_url + "/health/readiness", key))[0] == 200


@contextlib.asynccontextmanager
async def front_door_with_metrics_port(config: Config) -> AsyncIterator[tuple[str, str]]:
    """A front door as `serve --metrics-port` runs it; yields the API and metrics URLs."""
    port, metrics_port = free_port(), free_port()
    stopping, ready = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(
        serve_front_door(
            config,
            REDIS_URL,
            host="127.0.0.1",
            port=port,
            stopping=stopping,
            ready=ready,
            metrics_port=metrics_port,
        )
    )
    try:
        waiting = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait(
            {serving, waiting}, timeout=START_S, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.cancel()
        if serving in done:
            serving.result()  # it failed to start: show why
        assert ready.is_set(), "the front door did not start"
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}"
    finally:
        stopping.set()
        await serving


async def test_the_metrics_port_serves_metrics_and_health_and_nothing_of_the_api(
    fake: FakeUpstream, namespace: str
) -> None:
    config = keyed_config(fake, namespace)
    worker = await start_worker(config)
    try:
        async with front_door_with_metrics_port(config) as (api, metrics):
            status, text = await get(metrics + "/metrics")
            assert status == 200
            assert "switchboard_queue_depth" in text
            assert (await get(metrics + "/health/liveliness")) == (200, {"status": "alive"})
            await wait_until(lambda: is_ready(metrics), START_S)
            status, readiness = await get(metrics + "/health/readiness")
            assert readiness["live_workers"] == 1 and readiness["redis"] == "ok"
            for path in ("/v1/models", "/v1/chat/completions", "/v1/streams/req_x"):
                status, body = await get(metrics + path, MASTER)
                assert status == 404, path
                assert body["error"]["message"] == (
                    f"Unknown path `{path}`; this gateway serves /metrics, /health/liveliness, "
                    "/health/liveness, /health/readiness"
                )
            # The API port still serves the API.
            assert (await get(api + "/v1/models", MASTER))[0] == 200
    finally:
        await worker.stop()


@pytest.mark.parametrize("path", ["/health/liveliness", "/health/liveness"])
async def test_a_workers_metrics_port_answers_liveness(path: str) -> None:
    async with metrics_endpoint(WorkerMetrics().registry, "127.0.0.1", 0) as port:
        assert await get(f"http://127.0.0.1:{port}{path}") == (200, {"status": "alive"})


def test_a_short_metrics_key_fails_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(MODELS + "switchboard_settings: {metrics_key: short}\n", {})
    assert str(info.value).startswith(
        "switchboard_settings: metrics_key must be at least 8 characters"
    )
