"""The batch lane takes only what interactive traffic leaves: a worker holds batch lines
in at most `batches.max_share` of its slots, so an interactive request finds a free slot
at once and is answered while a batch backlog still waits."""

from __future__ import annotations

import asyncio
from pathlib import Path

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


async def test_a_worker_short_of_cpu_takes_one_batch_line_at_a_time(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    config = batch_config(fake, namespace, tmp_path / "files", window=8)
    async with service(config, workers=1, concurrency=CONCURRENCY) as ([door], [worker]):
        # Its loop counts as late whatever it measures (workers/loop_lag.py).
        worker.worker.loop_lag.busy_ms = -1.0
        lane_name = config.switchboard_settings.batches.lane
        most = 0
        watching = True

        async def watch() -> None:
            nonlocal most
            while watching:
                jobs = worker.worker.jobs.values()
                most = max(most, sum(1 for job in jobs if job.lane == lane_name))
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        sdk = clients(door.url)
        data = chat_lines(6, "slow")
        uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        done = await finished(sdk, batch.id)
        watching = False
        await watcher
        assert done.status == "completed"  # it trickled on, it did not stall
        assert most == 1
