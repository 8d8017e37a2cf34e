"""A Redis at its `maxmemory` (with `noeviction`, the policy a queue needs) refuses writes;
requests then get a clear 503 `queue_unavailable` with Retry-After, never a 500, and the
service carries on once there is room (issue #13, item 2). Real processes on a private
Redis of the embedded kind, whose limit the test lowers below what it holds."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import redis as sync_redis
from redis.asyncio import Redis

from broker.embedded_redis import EmbeddedRedis, default_maxmemory
from tests.broker.processes import free_port, switchboard, wait_ready, write_config
from tests.redis_helpers import new_namespace
from workers import redis_streams
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "hello"}]
MODELS = """\
- model_name: slow-big
  litellm_params:
    model: openai/gpt-4o-mini~latency=2~reply_bytes=3000000
    api_base: {base}
    api_key: sk-fake
"""


@pytest.fixture
def private_redis() -> Iterator[str]:
    with EmbeddedRedis(maxmemory_bytes=256 * 1024 * 1024) as server:
        yield server.url


async def ask(http: aiohttp.ClientSession, url: str, model: str) -> tuple[int, Any, Any]:
    body = {"model": model, "messages": HELLO}
    async with http.post(url + "/v1/chat/completions", json=body) as response:
        return response.status, await response.json(), response.headers


async def test_a_full_redis_is_a_503_queue_unavailable_at_the_door_and_in_the_worker(
    fake: FakeUpstream, private_redis: str, tmp_path: Path
) -> None:
    base = fake.base_url + "/v1"
    namespace = new_namespace()
    config = write_config(tmp_path, base, namespace, extra_models=MODELS.format(base=base))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    redis = Redis.from_url(private_redis)
    serve = ("serve", "--config", str(config), "--port", str(port))
    work = ("worker", "--config", str(config))
    async with (
        switchboard(*serve, directory=tmp_path, redis_url=private_redis, name="serve") as door,
        switchboard(*work, directory=tmp_path, redis_url=private_redis, name="worker") as worker,
        aiohttp.ClientSession() as http,
    ):
        await wait_ready(url, workers=1, processes=(door, worker))
        assert (await ask(http, url, "gpt-test"))[0] == 200
        policy = await redis.config_get("maxmemory*")
        assert policy["maxmemory-policy"] == "noeviction"
        assert int(policy["maxmemory"]) == 256 * 1024 * 1024

        # Redis fills up while a worker waits on the provider: its reply cannot be stored.
        answer = asyncio.create_task(ask(http, url, "slow-big"))
        await fake.wait_for_requests(2)
        await redis.config_set("maxmemory", 1)  # below what it holds: every write refused
        status, body, headers = await answer
        assert status == 503, body
        assert body["error"]["code"] == "queue_unavailable"
        assert body["error"]["type"] == "service_unavailable_error"
        assert "maxmemory" in body["error"]["message"]
        assert "refused to store the reply" in body["error"]["message"]
        assert headers["Retry-After"] == "1"
        # The request is settled, not left to be run again into the same full Redis.
        lane = Keys(namespace).lane("default")
        assert (await redis.xpending(lane, redis_streams.GROUP))["pending"] == 0

        # New requests are refused at the door, before anything is queued.
        status, body, headers = await ask(http, url, "gpt-test")
        assert status == 503, body
        assert body["error"]["code"] == "queue_unavailable"
        assert "full (Redis reached its maxmemory)" in body["error"]["message"]
        assert headers["Retry-After"] == "1"

        # Room again: the service carries on.
        await redis.config_set("maxmemory", 256 * 1024 * 1024)
        assert (await ask(http, url, "gpt-test"))[0] == 200
        assert "Traceback" not in worker.output() and "Traceback" not in door.output()
    await redis.aclose()


def test_the_default_limit_is_a_gib_or_a_quarter_of_memory() -> None:
    limit = default_maxmemory()
    assert 64 * 1024 * 1024 <= limit <= 1024 * 1024 * 1024


async def test_up_starts_its_embedded_redis_with_the_configured_maxmemory(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    namespace = new_namespace()
    settings = {"embedded_redis_maxmemory": 48 * 1024 * 1024}
    config = write_config(tmp_path, fake.base_url + "/v1", namespace, settings=settings)
    port = free_port()
    args = ("up", "--config", str(config), "--port", str(port), "--workers", "1")
    async with switchboard(*args, directory=tmp_path, redis_url=None) as up:
        await wait_ready(f"http://127.0.0.1:{port}", workers=1, processes=(up,))
        found = re.search(r"embedded Redis at (unix://\S+)", up.output())
        assert found is not None, up.output()
        client = sync_redis.Redis.from_url(found.group(1))
        try:
            # redis-py types it for its sync and async clients at once.
            limits = cast("dict[str, str]", client.config_get("maxmemory*"))
        finally:
            client.close()
    assert limits["maxmemory"] == str(48 * 1024 * 1024)
    assert limits["maxmemory-policy"] == "noeviction"
