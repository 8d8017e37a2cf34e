"""A worker's background loops (heartbeats, claims, takeovers, the listener for
cancellations and dead workers, its routing liveness) outlive Redis's refusals, and if one
still dies the worker stops rather than go on consuming while invisible or deaf (issue #14,
item 6). Draining stops reclaims and takeovers first.

Refusals come from a real redis-server of the test's own: a failover's READONLY (the server
is made a replica of a dead master, then a master again), and an ACL's NOPERM (a user
without the channel, then given it). A loop that dies for good is simulated by cancelling
its task from outside: every Redis error is outlived by design, so only a bug kills one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from broker.embedded_redis import EmbeddedRedis
from tests.broker.harness import (
    FAST_CLAIMS,
    RunningWorker,
    make_config,
    post,
    service,
    start_front_door,
    start_worker,
    wait_until,
)
from tests.broker.processes import free_port
from workers import redis_streams
from workers.redis_streams import Keys
from workers.supervision import TaskDied
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]
HANGS = """\
- model_name: hangs
  litellm_params:
    model: openai/gpt-4o-mini~hang
    api_base: {base}
    api_key: sk-fake
"""
PASSWORD = "pw-supervised-loops"


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(64 * 1024 * 1024) as server:
        yield server


@contextlib.asynccontextmanager
async def admin_of(server: EmbeddedRedis) -> AsyncIterator[Redis]:
    admin = Redis.from_url(server.url)
    try:
        yield admin
    finally:
        await admin.aclose()


def as_user(server: EmbeddedRedis, user: str) -> str:
    return server.url.replace("unix://", f"unix://{user}:{PASSWORD}@", 1)


async def rejected(admin: Redis, command: str) -> int:
    stats: Any = await admin.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("rejected_calls", 0))


async def is_live(redis: Redis, keys: Keys, worker_id: str, since_s: float) -> bool:
    score = await redis.zscore(keys.heartbeats, worker_id)
    return score is not None and score > since_s


async def stopped_by_death(running: RunningWorker) -> TaskDied:
    async with asyncio.timeout(10):
        with pytest.raises(TaskDied) as died:
            await running.task
    await running.http.close()
    await running.redis.aclose()
    return died.value


async def test_a_failover_readonly_is_outlived_by_the_worker_and_its_loops(
    fake: FakeUpstream, private_redis: EmbeddedRedis
) -> None:
    config = make_config(fake.base_url + "/v1", "failover", settings=FAST_CLAIMS)
    keys = Keys("failover")
    async with admin_of(private_redis) as admin, aiohttp.ClientSession() as http:
        worker = await start_worker(config, private_redis.url)
        door = await start_front_door(config, private_redis.url)
        try:
            assert (await post(http, door.url, {"model": "gpt-test", "messages": HELLO}))[0] == 200
            # A failover: this node becomes a replica (of a dead master) and refuses writes.
            await admin.replicaof("127.0.0.1", free_port())

            async def every_loop_was_refused() -> bool:
                commands = ("zadd", "xreadgroup", "xautoclaim")
                return all([await rejected(admin, command) > 0 for command in commands])

            await wait_until(every_loop_was_refused)
            await admin.replicaof("NO", "ONE")
            recovered_s = time.time()

            async def heard_again() -> bool:
                return await is_live(admin, keys, worker.worker.worker_id, recovered_s)

            await wait_until(heard_again)
            assert not worker.task.done()
            assert (await post(http, door.url, {"model": "gpt-test", "messages": HELLO}))[0] == 200
        finally:
            await door.stop()
            await worker.stop_if_running()


async def test_the_cancellation_listener_outlives_a_refused_subscribe(
    fake: FakeUpstream, private_redis: EmbeddedRedis
) -> None:
    config = make_config(fake.base_url + "/v1", "acl", settings=FAST_CLAIMS)
    keys = Keys("acl")
    async with admin_of(private_redis) as admin:
        # A user that may do everything but listen on any channel.
        await admin.acl_setuser(
            "worker",
            enabled=True,
            passwords=[f"+{PASSWORD}"],
            keys=["*"],
            commands=["+@all"],
            reset_channels=True,
        )
        worker = await start_worker(config, as_user(private_redis, "worker"))
        try:

            async def subscribe_refused() -> bool:
                log: Any = await admin.acl_log()
                return any(entry["object"] == keys.cancel_channel for entry in log)

            await wait_until(subscribe_refused)
            await admin.acl_setuser("worker", enabled=True, channels=["*"])

            async def listening() -> bool:
                ((_channel, count),) = await admin.pubsub_numsub(keys.cancel_channel)
                return bool(count == 1)

            await wait_until(listening)
            assert not worker.task.done()
        finally:
            await worker.stop_if_running()


LOOPS = ["heartbeats", "claims", "takeovers", "notices", "routing liveness"]


@pytest.mark.parametrize("loop", LOOPS)
async def test_a_worker_whose_loop_dies_drains_and_stops(
    fake: FakeUpstream, namespace: str, redis: Redis, loop: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace, settings=FAST_CLAIMS)
    keys = Keys(namespace)
    worker = await start_worker(config)
    worker_id = worker.worker.worker_id
    await wait_until(lambda: is_live(redis, keys, worker_id, 0))
    (task,) = [task for task in asyncio.all_tasks() if task.get_name() == loop]
    task.cancel()  # the loop dies (a bug would raise; every Redis error is outlived)
    died = await stopped_by_death(worker)
    assert died.name == loop
    assert await redis.zscore(keys.heartbeats, worker_id) is None  # forgotten, not stale
    infos, _freshest = await redis_streams.worker_infos(redis, keys, [worker_id])
    assert infos == [redis_streams.WorkerInfo()]


async def test_heartbeats_describe_the_worker_to_front_doors(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(fake.base_url + "/v1", namespace, settings=FAST_CLAIMS)
    keys = Keys(namespace)
    worker = await start_worker(config, concurrency=7)
    try:
        await wait_until(lambda: is_live(redis, keys, worker.worker.worker_id, 0))
        (info,), freshest = await redis_streams.worker_infos(redis, keys, [worker.worker.worker_id])
        assert (info.pid, info.concurrency, info.in_flight) == (os.getpid(), 7, 0)
        assert freshest is not None and info.started <= freshest
    finally:
        await worker.stop()


async def test_draining_stops_reclaims_first_and_waits_for_every_job(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        settings=FAST_CLAIMS,
        extra_models=HANGS.format(base=fake.base_url + "/v1"),
    )
    keys = Keys(namespace)
    lane = keys.lane("default")
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        running = await start_worker(config, concurrency=2)
        worker = running.worker
        hangs = {"model": "hangs", "messages": HELLO}
        first = asyncio.create_task(post(http, door.url, hangs))

        async def running_it() -> bool:
            return bool(worker.jobs)

        await wait_until(running_it)
        running.stopping.set()  # drain: the first request runs until its client leaves

        async def not_consuming() -> bool:
            return not [task for task in asyncio.all_tasks() if task.get_name() == "consume"]

        await wait_until(not_consuming)
        # A request taken by a worker that then died, idle past claim_idle_ms (1 s) while
        # the drain goes on, with a slot free here.
        second = asyncio.create_task(post(http, door.url, hangs))

        async def queued() -> bool:
            return int(await redis.xlen(lane)) == 2  # the running one is still in the lane

        await wait_until(queued)
        taken = await redis_streams.read_requests(redis, keys, "ghost", ["default"], 1, None)
        assert len(taken) == 1

        async def left_to_the_ghost() -> bool:
            # Twice claim_idle_ms while the drain goes on: a reclaim would have taken it.
            entry = taken[0][1]
            rows: Any = await redis.xpending_range(lane, redis_streams.GROUP, entry, entry, 1)
            assert [row["consumer"] for row in rows] == [b"ghost"], "reclaimed while draining"
            return bool(rows[0]["time_since_delivered"] >= 2000)

        await wait_until(left_to_the_ghost)
        assert not running.task.done()  # still draining the first request
        first.cancel()  # its client leaves: the worker, still listening, cancels it
        async with asyncio.timeout(30):
            await running.task
        await running.http.close()
        await running.redis.aclose()
        assert worker.jobs == {}  # nothing it started is left running
        pending: Any = await redis.xpending_range(lane, redis_streams.GROUP, "-", "+", 10)
        assert [row["consumer"] for row in pending] == [b"ghost"]  # for a live worker to take
        second.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
