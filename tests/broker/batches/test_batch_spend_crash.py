"""A batch's spend survives crashes (issue #20): kill -9 of the front door running a batch,
then of a worker running its lines, and the spend ledger still holds each line's cost
exactly once (one row per line's request, tagged with the batch), the key's total is their
sum, and the batch's own running cost agrees with the ledger."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.broker.batches.sdk import Clients, clients, finished, lines_of
from tests.broker.batches.test_batch_processes import (
    LINES,
    SLOW_LINE,
    settings,
    some_done,
    start_batch,
)
from tests.broker.management.conftest import MASTER, general
from tests.broker.processes import free_port, switchboard, wait_ready, write_config
from tests.db_fixtures import *  # noqa: F403  (database_url, database: both backends)
from tests.redis_helpers import REDIS_URL
from tests.waiting import eventually
from workers.db.engine import Database
from workers.testing.server import FakeUpstream

__all__ = ["clients"]

# The processes tests' line model, priced: each line costs something.
PRICED_LINE = (
    SLOW_LINE
    + """\
  model_info:
    base_model: gpt-4o-mini
"""
)


async def api(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {MASTER}"}
    async with http.request(method, url, headers=headers, **kwargs) as reply:
        assert reply.status == 200, await reply.text()
        return await reply.json()


async def test_kill_9_of_the_runner_and_a_worker_leaves_each_lines_cost_once_in_the_ledger(
    fake: FakeUpstream,
    namespace: str,
    tmp_path: Path,
    clients: Clients,
    database: Database,
    database_url: str,
) -> None:
    base = fake.base_url + "/v1"
    config = write_config(
        tmp_path,
        base,
        namespace,
        settings=settings(tmp_path / "files"),
        extra_models=PRICED_LINE.format(base=base),
        general=general(database_url),
    )
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    run: dict[str, Any] = {"directory": tmp_path, "redis_url": REDIS_URL}
    serve = ("serve", "--config", str(config), "--port")
    work = ("worker", "--config", str(config))
    async with (
        aiohttp.ClientSession() as http,
        switchboard(*work, name="doomed-worker", **run) as doomed_worker,
        switchboard(*work, name="worker", **run) as worker,
        switchboard(*serve, str(ports[0]), name="doomed-door", **run) as doomed_door,
    ):
        await wait_ready(urls[0], workers=2, processes=(doomed_door, doomed_worker, worker))
        key = (await api(http, "POST", urls[0] + "/key/generate", json={}))["key"]
        sdk = clients(urls[0], key)
        batch_id = await start_batch(sdk)
        await some_done(sdk, batch_id, LINES // 4)
        # Between two checkpoints of the batch's record (each second): lines written since
        # the last one are in the output file, their cost not yet in the record.
        await asyncio.sleep(0.5)
        os.kill(doomed_door.pid, signal.SIGKILL)
        assert await doomed_door.wait() == -signal.SIGKILL
        async with switchboard(*serve, str(ports[1]), name="door", **run) as door:
            await wait_ready(urls[1], workers=2, processes=(door, worker))
            sdk = clients(urls[1], key)
            await some_done(sdk, batch_id, LINES // 2)
            os.kill(doomed_worker.pid, signal.SIGKILL)
            assert await doomed_worker.wait() == -signal.SIGKILL
            done = await finished(sdk, batch_id, timeout_s=120)
            assert done.status == "completed", done
            output = await lines_of(sdk, done.output_file_id)
            assert len(output) == LINES
            request_ids = {line["response"]["request_id"] for line in output}
            rows: list[dict[str, Any]] = []

            async def ledgered() -> bool:
                query = {"api_key": key, "limit": "1000"}
                rows[:] = await api(http, "GET", urls[1] + "/spend/logs", params=query)
                return len(rows) >= LINES

            await eventually(ledgered, what="every line in the ledger", timeout_s=60)
            info = await api(http, "GET", urls[1] + "/key/info", params={"key": key})
    # One row per line's request, none twice, each tagged with its batch.
    assert sorted(row["request_id"] for row in rows) == sorted(request_ids)
    assert all(f"batch:{batch_id}" in row["request_tags"] for row in rows)
    costs = [float(row["spend"]) for row in rows]
    assert min(costs) > 0
    assert info["info"]["spend"] == pytest.approx(sum(costs))
    # The batch's running cost counts each line once too, the lines finished just before
    # the kill included.
    assert done.model_extra is not None
    assert done.model_extra["cost_usd"] == pytest.approx(sum(costs))
