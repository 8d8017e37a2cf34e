"""The batch lane takes only what interactive traffic leaves: a worker holds batch lines
in at most `batches.max_share` of its slots, so an interactive request finds a free slot
at once and is answered while a batch backlog still waits; and while interactive requests
run on a worker short of CPU, its batch pace falls to one line (workers/runtime/batch_pace.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.broker.batches.sdk import KEY_A, Clients, batch_config, chat_lines, clients, finished
from tests.broker.harness import post, service
from tests.waiting import eventually
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

__all__ = ["clients"]

CONCURRENCY = 4
HELLO = [{"role": "user", "content": "hi"}]


async def test_interactive_requests_are_served_while_a_batch_backlog_waits(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files", window=32, max_share=0.5)
    async with service(config, workers=1, concurrency=CONCURRENCY) as ([door], [worker]):
        sdk = clients(door.url)
        # Slow lines (0.5 s each): the batch lane holds a backlog for many seconds.
        data = chat_lines(40, "slow")
        uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        lane_name = config.switchboard_settings.batches.lane
        lane = Keys(namespace).lane(lane_name)
        redis = worker.worker.redis

        async def backlog() -> int:
            return int(await redis.xlen(lane))

        most_batch_jobs = 0
        watching = True

        async def watch() -> None:
            nonlocal most_batch_jobs
            while watching:
                jobs = worker.worker.jobs.values()
                held = sum(1 for job in jobs if job.lane == lane_name)
                most_batch_jobs = max(most_batch_jobs, held)
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())

        async def has_backlog() -> bool:
            return await backlog() >= 10

        await eventually(has_backlog, what="a batch backlog", timeout_s=30, poll_s=0.05)
        headers = {"Authorization": f"Bearer {KEY_A}"}
        async with aiohttp.ClientSession(headers=headers) as http:
            # Twice the slots batch lines may not take, four times over.
            for _ in range(4):
                body = {"model": "gpt-test", "messages": HELLO}
                answers = await asyncio.gather(*(post(http, door.url, body) for _ in range(2)))
                assert [status for status, _, _ in answers] == [200, 200]
        # Every interactive request was answered while batch lines still waited their turn.
        assert await backlog() > 0
        retrieved = await sdk.batches.retrieve(batch.id)
        assert retrieved.request_counts is not None
        assert retrieved.request_counts.completed < 40
        watching = False
        await watcher
        assert 1 <= most_batch_jobs <= CONCURRENCY // 2


async def held_batch_lines(
    worker: Any, lane_name: str, most: list[int], stop: asyncio.Event
) -> None:
    """The most batch lines the worker held at once, sampled until `stop`."""
    while not stop.is_set():
        jobs = worker.worker.jobs.values()
        most[0] = max(most[0], sum(1 for job in jobs if job.lane == lane_name))
        await asyncio.sleep(0.005)


async def test_a_worker_short_of_cpu_holds_one_batch_line_while_interactive_requests_run(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files", window=8)
    async with service(config, workers=1, concurrency=CONCURRENCY) as ([door], [worker]):
        # Its loop counts as late whatever it measures (workers/loop_lag.py).
        worker.worker.batch_pace.lag.busy_ms = -1.0
        lane_name = config.switchboard_settings.batches.lane
        stop, most = asyncio.Event(), [0]
        headers = {"Authorization": f"Bearer {KEY_A}"}
        async with aiohttp.ClientSession(headers=headers) as http:

            async def interactive() -> None:
                while not stop.is_set():
                    body = {"model": "gpt-test", "messages": HELLO}
                    assert (await post(http, door.url, body))[0] == 200

            load = asyncio.create_task(interactive())
            await asyncio.sleep(0.2)  # interactive traffic is about before the batch comes
            watcher = asyncio.create_task(held_batch_lines(worker, lane_name, most, stop))
            sdk = clients(door.url)
            data = chat_lines(6, "slow")
            uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
            batch = await sdk.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            done = await finished(sdk, batch.id)
            stop.set()
            await asyncio.gather(load, watcher)
        assert done.status == "completed"  # it trickled on, it did not stall
        assert most[0] == 1


async def test_without_interactive_traffic_a_batch_takes_its_whole_share(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    """A late loop alone is no reason to yield: nothing interactive waits for the CPU."""
    config = batch_config(fake, namespace, tmp_path / "files", window=8)
    async with service(config, workers=1, concurrency=CONCURRENCY) as ([door], [worker]):
        worker.worker.batch_pace.lag.busy_ms = -1.0
        lane_name = config.switchboard_settings.batches.lane
        stop, most = asyncio.Event(), [0]
        watcher = asyncio.create_task(held_batch_lines(worker, lane_name, most, stop))
        sdk = clients(door.url)
        data = chat_lines(12, "slow")
        uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = await finished(sdk, batch.id)
        stop.set()
        await watcher
        assert done.status == "completed"
        assert most[0] == CONCURRENCY - 1  # max_share 0.75 of 4 slots, one left
