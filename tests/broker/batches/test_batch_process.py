"""Batches in a process of their own (`worker --batches`, issue #20): the front door
(`serve --no-batches`) runs no batch and the interactive worker (`worker --no-batches`)
reads no batch line; the batch process runs the batch at a lower CPU priority, and a kill
-9 of it loses and repeats no line."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis

from tests.broker.batches.sdk import KEY_A, Clients, clients
from tests.broker.batches.test_batch_processes import (
    LINES,
    SLOW_LINE,
    check_each_line_once,
    settings,
    some_done,
    start_batch,
)
from tests.broker.processes import free_port, switchboard, wait_ready, write_config
from tests.redis_helpers import REDIS_URL
from workers import redis_streams
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

__all__ = ["clients"]


def stat(pid: int) -> list[str]:
    """/proc/<pid>/stat's fields from the third (state) on."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def niceness(pid: int) -> int:
    return int(stat(pid)[16])


def policy(pid: int) -> int:
    return int(stat(pid)[38])


async def consumers(redis: Redis, namespace: str, lane: str) -> set[str]:
    stream = Keys(namespace).lane(lane)
    found = cast("list[dict[str, Any]]", await redis.xinfo_consumers(stream, redis_streams.GROUP))
    return {
        entry["name"].decode() if isinstance(entry["name"], bytes) else entry["name"]
        for entry in found
    }


async def test_a_batch_process_runs_the_batch_alone_at_a_lower_priority(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients, redis: Redis
) -> None:
    base = fake.base_url + "/v1"
    config = write_config(
        tmp_path,
        base,
        namespace,
        settings=settings(tmp_path / "files"),
        extra_models=SLOW_LINE.format(base=base),
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run: dict[str, Any] = {"directory": tmp_path, "redis_url": REDIS_URL}
    conf = ("--config", str(config))
    batch_worker = ("worker", "--batches", *conf)
    async with (
        switchboard(
            "serve", "--no-batches", *conf, "--port", str(port), name="door", **run
        ) as door,
        switchboard("worker", "--no-batches", *conf, "--worker-id", "chat", name="chat", **run),
        switchboard(*batch_worker, "--worker-id", "doomed", name="doomed", **run) as doomed,
    ):
        await wait_ready(url, workers=2, processes=(door, doomed))
        assert niceness(doomed.pid) == min(19, niceness(os.getpid()) + 19)
        assert policy(doomed.pid) == os.SCHED_IDLE
        assert policy(door.pid) == os.SCHED_OTHER
        sdk = clients(url, KEY_A)
        batch_id = await start_batch(sdk)
        await some_done(sdk, batch_id, LINES // 4)
        # A chat request beside it is the interactive worker's.
        reply = await sdk.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices
        # kill -9 of the batch process (runners and lane worker at once): another takes over.
        os.kill(doomed.pid, signal.SIGKILL)
        assert await doomed.wait() == -signal.SIGKILL
        async with switchboard(*batch_worker, "--worker-id", "survivor", name="survivor", **run):
            await check_each_line_once(sdk, batch_id, fake)
        assert await consumers(redis, namespace, "batches") <= {"doomed", "survivor"}
        assert "chat" in await consumers(redis, namespace, "default")
        assert not {"doomed", "survivor"} & await consumers(redis, namespace, "default")
        assert "resumes" not in door.output()
