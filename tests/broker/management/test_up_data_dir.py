"""Issue #17, item 7: `switchboard up` makes its data directory and keeps the system of record
there (SQLite) across restarts; `--data-dir` or SWITCHBOARD_DATA_DIR names it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest

from tests.broker.management.conftest import MASTER, Api, general
from tests.broker.processes import Process, free_port, switchboard, write_config
from tests.redis_helpers import REDIS_URL
from workers.testing.server import FakeUpstream

START_TIMEOUT_S = 60.0


async def wait_ready(url: str, process: Process) -> None:
    """Readiness answers 200 (with the master key set it shows no details to others)."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(START_TIMEOUT_S):
        while True:
            assert process.popen.poll() is None, process.output()
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/health/readiness") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_up_keeps_keys_in_sqlite_in_its_data_directory(
    tmp_path: Path, fake: FakeUpstream, namespace: str
) -> None:
    config = write_config(tmp_path, fake.base_url + "/v1", namespace, general=general(None))
    data = tmp_path / "state"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    up = ["up", "--config", str(config), "--port", str(port), "--workers", "1"]
    async with switchboard(
        *up, "--data-dir", str(data), directory=tmp_path, redis_url=REDIS_URL
    ) as process:
        await wait_ready(url, process)
        async with aiohttp.ClientSession() as http:
            created = await Api(http, url).ok("POST", "/key/generate", {"key_alias": "kept"})
    assert (data / "switchboard.db").is_file()

    env = {"SWITCHBOARD_DATA_DIR": str(data)}
    async with switchboard(
        *up, directory=tmp_path, redis_url=REDIS_URL, name="again", env=env
    ) as process:
        await wait_ready(url, process)
        async with aiohttp.ClientSession() as http:
            info = await Api(http, url).ok("GET", "/key/info", key=created["key"])
    assert info["info"]["key_alias"] == "kept"
    assert MASTER not in (data / "switchboard.db").read_bytes().decode(errors="replace")
