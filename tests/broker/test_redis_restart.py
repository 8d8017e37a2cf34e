"""Redis restarts without persistence (the embedded default keeps nothing on disk), or is
flushed, under real `switchboard serve` and `switchboard worker` processes. While Redis is
down, requests are refused with a clean 503 and nothing hangs. Requests that were waiting
when it lost its data still get their answers: their front door queues again each one Redis
no longer has, and a copy whose first run is still going, or has answered, is not run again.
The worker carries on without a restart, and new requests are served."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
import redis
from redis.asyncio import Redis

from broker.embedded_redis import redis_server_binary
from tests.broker.harness import make_config, service
from tests.broker.processes import free_port, switchboard, wait_ready, write_config
from tests.waiting import eventually, eventually_sync
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.slow

HELLO = [{"role": "user", "content": "hello"}]
NAMESPACE = "restart"  # a private Redis: no other test shares it
SLOW = """\
- model_name: slow-answer
  litellm_params:
    model: openai/gpt-4o-mini~latency=2.5
    api_base: {base}
    api_key: sk-fake
"""
SETTINGS = {
    "worker_concurrency": 2,
    "heartbeat_interval_s": 0.2,
    "worker_ttl_s": 1.5,
    "claim_idle_ms": 2000,
    "renew_interval_ms": 300,
}


class PrivateRedis:
    """A redis-server of our own, on a fixed port, that can be killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [redis_server_binary(), "--port", str(self.port), "--save", "", "--appendonly"]
        argv += ["no", "--dir", str(self.directory), "--loglevel", "warning"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)

        def answers() -> bool:
            with contextlib.suppress(redis.ConnectionError):
                return bool(client.ping())
            return False

        try:
            eventually_sync(answers, what=f"redis-server on port {self.port} to answer")
        finally:
            client.close()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def flush(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            client.flushdb()
        finally:
            client.close()

    def keys(self) -> int:
        client = redis.Redis.from_url(self.url)
        try:
            return cast(int, client.dbsize())  # redis-py types it for both clients at once
        finally:
            client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


async def ask(
    http: aiohttp.ClientSession, url: str, model: str = "gpt-test"
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {"model": model, "messages": HELLO}
    async with http.post(url + "/v1/chat/completions", json=body) as response:
        return response.status, await response.json(content_type=None), dict(response.headers)


async def queued(
    server: PrivateRedis, *, running: int, lane_length: int, fake: FakeUpstream
) -> None:
    """Wait until every request is in Redis (the lane holds the running ones, unacknowledged,
    and the waiting ones) and the upstream has seen `running` calls in all."""
    lane = Keys(NAMESPACE).lane("default")
    async with Redis.from_url(server.url) as client:

        async def in_redis() -> bool:
            return fake.request_count >= running and await client.xlen(lane) == lane_length

        await eventually(in_redis, what=f"{lane_length} requests in the lane, {running} upstream")


async def test_a_restart_loses_no_waiting_request_and_the_service_carries_on(
    fake: FakeUpstream, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        fake.base_url + "/v1",
        NAMESPACE,
        settings=SETTINGS,
        extra_models=SLOW.format(base=fake.base_url + "/v1"),
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run: dict[str, Any] = {"directory": tmp_path, "redis_url": private_redis.url}
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        switchboard(
            "serve", "--config", str(config), "--port", str(port), name="door", **run
        ) as door,
        switchboard("worker", "--config", str(config), name="worker", **run) as worker,
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        await wait_ready(url, workers=1, processes=(door, worker))
        assert (await ask(http, url))[0] == 200

        # Two slow requests run at the worker (its concurrency is 2); four wait in the lane.
        waiting = [asyncio.create_task(ask(http, url, "slow-answer")) for _ in range(6)]
        await queued(private_redis, running=1 + 2, lane_length=6, fake=fake)
        assert not any(task.done() for task in waiting)
        private_redis.kill()

        # Redis is down: refused at once, with a reason and a time to retry.
        status, body, headers = await ask(http, url)
        assert status == 503, body
        assert body["error"]["code"] == "queue_unavailable"
        assert headers["Retry-After"] == "1"

        private_redis.start()
        answers = await asyncio.gather(*waiting)
        assert [status for status, _, _ in answers] == [200] * 6, answers
        assert all(body["choices"][0]["message"]["content"] for _, body, _ in answers)

        await wait_ready(url, workers=1, processes=(door, worker))
        assert (await ask(http, url))[0] == 200
        assert private_redis.keys() > 0  # the new, empty Redis was set up again
        # Each request reached the provider once: the two that were running when Redis
        # went were queued again too (nothing in Redis showed them running), and their
        # copies were dropped because the first run had answered.
        assert fake.request_count == 1 + 6 + 1

        # A FLUSHDB drops no connection; the front door's epoch check notices it all the same.
        waiting = [asyncio.create_task(ask(http, url, "slow-answer")) for _ in range(4)]
        await queued(private_redis, running=8 + 2, lane_length=4, fake=fake)
        private_redis.flush()
        answers = await asyncio.gather(*waiting)
        assert [status for status, _, _ in answers] == [200] * 4, answers

        assert worker.popen.poll() is None and door.popen.poll() is None
    assert "Traceback" not in worker.output(), worker.output()
    assert "Traceback" not in door.output(), door.output()
    requeues = re.findall(r"queued (\d+) lost requests again \((\d+) could not be", door.output())
    # The restart is seen on reconnecting, at once: all six. The flush is seen by the 2 s
    # check, by when the two that were running may have answered: at least the two queued.
    (restart, flush) = requeues
    assert restart == ("6", "0") and int(flush[0]) >= 2 and flush[1] == "0", door.output()


async def test_a_worker_makes_a_deleted_lane_and_its_group_again(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    """An operator who deletes a lane's stream (or a Redis that loses it) takes its consumer
    group along; the worker, blocked reading it, makes both again and serves what comes."""
    config = make_config(fake.base_url + "/v1", namespace)
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        service(config) as ([door], [worker]),
        aiohttp.ClientSession(timeout=timeout) as http,
    ):
        assert (await ask(http, door.url))[0] == 200
        await redis.delete(Keys(namespace).lane("default"))
        for _ in range(3):
            status, body, _ = await ask(http, door.url)
            assert status == 200, body
        assert not worker.task.done()
