"""Every long-lived task of a front door has an owner that notices when it ends (issue #14,
item 6): the reply listener outlives a Redis error that is no lost connection, its first
subscription is bounded, the cluster monitor outlives a worker description it cannot read,
and a task that ends all the same makes the front door not ready and stops its process.

Redis is real. The refused subscription is an ACL change on a private redis-server: taking a
user's channels disconnects its subscriber, and its next SUBSCRIBE gets NOPERM."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from broker import reply_hub
from broker.app import serve_front_door
from broker.cli import main
from broker.embedded_redis import EmbeddedRedis
from broker.monitor import TASK_NAME as MONITOR
from broker.reply_hub import EPOCH_WATCH, LISTENER, ReplyHub, SubscribeFailed
from broker.supervisor import Child, keep_alive
from tests.broker.harness import make_config, service, wait_until
from tests.broker.processes import free_port, write_config
from tests.redis_helpers import REDIS_URL, new_namespace
from workers import envelopes, redis_streams
from workers.envelopes import Record, live_message
from workers.redis_streams import Keys
from workers.supervision import Supervisor, TaskDied
from workers.testing.server import FakeUpstream

log = logging.getLogger("test.supervised_tasks")
USER, PASSWORD = "door", "door-password-0123"
WAIT_S = 30.0


class AclRedis:
    """A private redis-server with a user whose channel permission a test takes away."""

    def __init__(self, server: EmbeddedRedis) -> None:
        self.server = server
        # Synchronous, so that sync tests can use it as well.
        self.admin = SyncRedis.from_url(server.url)

    @property
    def user_url(self) -> str:
        return self.server.url.replace("unix://", f"unix://{USER}:{PASSWORD}@")

    def allow_channels(self, allowed: bool) -> None:
        # Taking the channels away disconnects the user's subscribers (Redis 7).
        self.admin.acl_setuser(
            USER,
            enabled=True,
            reset=True,
            passwords=[f"+{PASSWORD}"],
            keys=["*"],
            commands=["+@all"],
            channels=["*"] if allowed else None,
            reset_channels=not allowed,
        )

    def publish_live(self, channel: str, request_id: str) -> None:
        """A record published and not stored: only a live subscription delivers it (a
        waiter's idle poll reads the reply stream, which stays empty)."""
        record = envelopes.encode(Record(seq=1, end=envelopes.CANCELLED))
        self.admin.publish(channel, live_message(request_id, record))

    def subscribers(self, channel: str) -> int:
        ((_name, count),) = cast(Any, self.admin.pubsub_numsub(channel))
        return int(count)


@pytest.fixture
def acl_redis() -> Iterator[AclRedis]:
    with EmbeddedRedis(maxmemory_bytes=64 * 1024 * 1024) as server:
        acl = AclRedis(server)
        try:
            yield acl
        finally:
            acl.admin.close()


async def test_the_reply_listener_outlives_a_refused_subscription(
    acl_redis: AclRedis, caplog: pytest.LogCaptureFixture
) -> None:
    acl_redis.allow_channels(True)
    door = Redis.from_url(acl_redis.user_url)
    hub = ReplyHub(door, Keys(new_namespace()))
    async with Supervisor("front door", log) as tasks:
        await hub.start(tasks)
        waiter = hub.register("req-1")
        with caplog.at_level(logging.WARNING, logger="switchboard.relay"):
            acl_redis.allow_channels(False)

            async def refused() -> bool:
                return "no permissions" in caplog.text

            await wait_until(refused, WAIT_S)
        acl_redis.allow_channels(True)

        async def listening() -> bool:
            return acl_redis.subscribers(hub.channel) == 1

        await wait_until(listening, WAIT_S)
        acl_redis.publish_live(hub.channel, "req-1")
        async with asyncio.timeout(reply_hub.IDLE_POLL_S - 1):
            record = await waiter.next_record(asyncio.get_running_loop().time() + WAIT_S)
        assert record.end == envelopes.CANCELLED
        assert tasks.death is None
    await door.aclose()


async def test_the_first_subscription_is_bounded_and_says_why(acl_redis: AclRedis) -> None:
    acl_redis.allow_channels(False)
    door = Redis.from_url(acl_redis.user_url)
    hub = ReplyHub(door, Keys(new_namespace()), subscribe_timeout_s=0.5)
    async with Supervisor("front door", log) as tasks:
        with pytest.raises(SubscribeFailed) as failed:
            async with asyncio.timeout(WAIT_S):
                await hub.start(tasks)
    message = str(failed.value)
    assert hub.channel in message and "within 0.5s" in message
    assert "no permissions" in message
    assert tasks.running == []  # the listener stopped with its owner
    await door.aclose()


def test_a_front_door_that_cannot_subscribe_exits_1_saying_why(
    acl_redis: AclRedis,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    acl_redis.allow_channels(False)
    # No request is made: the upstream is never called.
    config = write_config(tmp_path, "http://127.0.0.1:9/v1", new_namespace())
    monkeypatch.setenv("REDIS_URL", acl_redis.user_url)
    monkeypatch.setattr(reply_hub, "SUBSCRIBE_TIMEOUT_S", 0.5)
    port = str(free_port())
    assert main(["serve", "--config", str(config), "--port", port]) == 1
    assert "did not confirm the reply subscription" in capsys.readouterr().err


async def test_the_monitor_outlives_a_worker_description_it_cannot_read(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    """A worker of another version writing `in_flight: many` used to end the refresh loop:
    admission then went on with a queue depth that no longer moved."""
    config = make_config(fake.base_url + "/v1", namespace)
    keys = Keys(namespace)
    async with service(config, workers=0) as ([door], _):
        # Written as another version of the worker might: not through our writer.
        await redis.hset(keys.worker_info("w-odd"), mapping={"in_flight": "many"})  # type: ignore[misc]
        await redis.zadd(keys.heartbeats, {"w-odd": time.time()})

        async def seen() -> bool:
            return bool(door.front.monitor.live_workers == ["w-odd"])

        await wait_until(seen, WAIT_S)
        # Refreshes after the one that met the description still count the queue.
        lane = door.front.settings.lanes[0]
        for _ in range(3):
            await redis_streams.enqueue(redis, keys, lane, b"not run: no worker")

        async def counted() -> bool:
            return bool(door.front.monitor.waiting(lane) == 3)

        await wait_until(counted, WAIT_S)
        assert door.front.death is None


def _task_named(name: str) -> asyncio.Task[Any]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == name]
    return task


async def readiness(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("name", [LISTENER, EPOCH_WATCH, MONITOR])
async def test_a_dead_background_task_makes_the_front_door_not_ready(
    fake: FakeUpstream, namespace: str, name: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace, settings={"public_metrics": "true"})
    async with service(config, workers=0) as ([door], _):
        url = door.url + "/health/readiness?workers=optional"
        status, body = await readiness(url)
        assert status == 200 and "stopped_task" not in body
        _task_named(name).cancel()  # as a bug would end it

        async def noticed() -> bool:
            return door.front.death is not None

        await wait_until(noticed, WAIT_S)
        status, body = await readiness(url)
        assert status == 503
        assert body["stopped_task"] == name and body["status"] == "not ready"


async def test_a_dead_background_task_drains_and_stops_the_front_door(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    stopping, ready = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(
        serve_front_door(
            config, REDIS_URL, host="127.0.0.1", port=free_port(), stopping=stopping, ready=ready
        )
    )
    try:
        async with asyncio.timeout(WAIT_S):
            await ready.wait()
        _task_named(LISTENER).cancel()
        with pytest.raises(TaskDied) as died:
            async with asyncio.timeout(WAIT_S):
                await serving
        assert died.value.name == LISTENER
        assert not stopping.is_set()  # it stopped on its own
    finally:
        stopping.set()
        if not serving.done():
            await serving


async def test_up_watches_its_children_even_past_a_start_the_os_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`switchboard up` starts a child again when it exits; a start that fails (here its
    program is gone) used to end the watcher, leaving the child dead for good."""
    program = tmp_path / "child"
    program.write_text('#!/bin/sh\nrm -- "$0"\nexit 3\n')  # runs once, then is gone
    program.chmod(0o755)
    child = Child("child", [str(program)], os.environ)
    stopping = asyncio.Event()
    async with Supervisor("switchboard up", log) as tasks:
        await child.start()
        with caplog.at_level(logging.ERROR, logger="test.supervised_tasks"):
            keep_alive(tasks, [child], stopping)

            async def refused() -> bool:
                return "FileNotFoundError" in caplog.text

            await wait_until(refused, WAIT_S)
        program.write_text("#!/bin/sh\nexec sleep 60\n")
        program.chmod(0o755)

        async def running() -> bool:
            return child.process is not None and child.process.returncode is None

        await wait_until(running, WAIT_S)
        assert tasks.death is None
        stopping.set()
    await child.stop(5)
