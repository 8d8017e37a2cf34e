"""Batches on real processes: kill -9 of the front door running a batch, or of a worker
running its lines, loses no line and writes none twice; the batch finishes with every
custom_id exactly once in its output."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from tests.broker.batches.handover import assert_each_once, front_door_handover
from tests.broker.batches.sdk import (
    API_KEYS,
    KEY_A,
    Clients,
    chat_lines,
    clients,
    finished,
    lines_of,
)
from tests.broker.processes import free_port, switchboard, wait_ready, write_config
from tests.redis_helpers import REDIS_URL
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

__all__ = ["clients"]

LINES = 300
WINDOW = 24
SLOW_LINE = """\
- model_name: line-model
  litellm_params:
    model: openai/gpt-4o-mini~latency=0.05
    api_base: {base}
    api_key: sk-fake
"""


def settings(storage: Path) -> dict[str, Any]:
    return {
        "claim_idle_ms": 2000,
        "renew_interval_ms": 300,
        "heartbeat_interval_s": 0.2,
        "worker_ttl_s": 1.5,
        "drain_timeout_s": 5,
        "public_metrics": "true",
        "api_keys": API_KEYS,
        "files": f"{{storage_dir: '{storage}'}}",
        "batches": f"{{lease_s: 1.0, window: {WINDOW}}}",
    }


async def start_batch(sdk: Any) -> str:
    data = chat_lines(LINES, model="line-model")
    uploaded = await sdk.files.create(file=("in.jsonl", data), purpose="batch")
    batch = await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return str(batch.id)


async def some_done(sdk: Any, batch_id: str, at_least: int) -> None:
    async def enough() -> bool:
        counts = (await sdk.batches.retrieve(batch_id)).request_counts
        return counts is not None and at_least <= counts.completed < LINES

    await eventually(enough, what=f"{at_least} lines done", timeout_s=60, poll_s=0.05)


async def check_each_line_once(sdk: Any, batch_id: str, fake: FakeUpstream) -> None:
    done = await finished(sdk, batch_id, timeout_s=120)
    assert done.status == "completed", done
    output = await lines_of(sdk, done.output_file_id)
    assert_each_once(output, (f"req-{i}" for i in range(LINES)))
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (LINES, 0)
    # Lines running at the kill may have run again upstream; no more than that.
    assert LINES <= fake.request_count <= LINES + 2 * WINDOW


async def test_kill_9_of_the_front_door_running_a_batch_loses_and_repeats_no_line(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    base = fake.base_url + "/v1"
    storage = tmp_path / "files"
    config = write_config(
        tmp_path,
        base,
        namespace,
        settings=settings(storage),
        extra_models=SLOW_LINE.format(base=base),
    )
    async with front_door_handover(config, tmp_path) as handover:
        sdk = clients(handover.urls[0], KEY_A)
        batch_id = await start_batch(sdk)
        await some_done(sdk, batch_id, LINES // 4)
        await handover.kill_doomed()
        async with handover.survivor() as survivor:
            await check_each_line_once(clients(handover.urls[1], KEY_A), batch_id, fake)
            assert "resumes" in survivor.output()


async def test_kill_9_of_a_worker_running_batch_lines_loses_and_repeats_no_line(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    base = fake.base_url + "/v1"
    storage = tmp_path / "files"
    config = write_config(
        tmp_path,
        base,
        namespace,
        settings=settings(storage),
        extra_models=SLOW_LINE.format(base=base),
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run: dict[str, Any] = {"directory": tmp_path, "redis_url": REDIS_URL}
    work = ("worker", "--config", str(config))
    async with (
        switchboard(
            "serve", "--config", str(config), "--port", str(port), name="serve", **run
        ) as door,
        switchboard(*work, name="doomed", **run) as doomed,
        switchboard(*work, name="survivor", **run) as survivor,
    ):
        await wait_ready(url, workers=2, processes=(door, doomed, survivor))
        sdk = clients(url, KEY_A)
        batch_id = await start_batch(sdk)
        await some_done(sdk, batch_id, LINES // 4)
        os.kill(doomed.pid, signal.SIGKILL)
        assert await doomed.wait() == -signal.SIGKILL
        await check_each_line_once(sdk, batch_id, fake)
        assert survivor.popen.poll() is None


async def test_a_restart_of_the_whole_service_loses_and_repeats_no_line(
    fake: FakeUpstream, namespace: str, tmp_path: Path, clients: Clients
) -> None:
    """Front door and worker killed together (kill -9), then started again on the same
    Redis and file store: the batch goes on from its files and its notes."""
    base = fake.base_url + "/v1"
    storage = tmp_path / "files"
    models = SLOW_LINE.format(base=base)
    config = write_config(
        tmp_path, base, namespace, settings=settings(storage), extra_models=models
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run: dict[str, Any] = {"directory": tmp_path, "redis_url": REDIS_URL}
    serve = ("serve", "--config", str(config), "--port", str(port))
    work = ("worker", "--config", str(config))
    async with (
        switchboard(*serve, name="door-1", **run) as door,
        switchboard(*work, name="worker-1", **run) as worker,
    ):
        await wait_ready(url, workers=1, processes=(door, worker))
        sdk = clients(url, KEY_A)
        batch_id = await start_batch(sdk)
        await some_done(sdk, batch_id, LINES // 3)
        for process in (door, worker):
            os.kill(process.pid, signal.SIGKILL)
        for process in (door, worker):
            assert await process.wait() == -signal.SIGKILL
    async with (
        switchboard(*serve, name="door-2", **run) as door,
        switchboard(*work, name="worker-2", **run) as worker,
    ):
        await wait_ready(url, workers=1, processes=(door, worker))
        await check_each_line_once(clients(url, KEY_A), batch_id, fake)
