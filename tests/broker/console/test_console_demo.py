"""`switchboard up --demo` opens on a console with data (issue #21): a database key
`demo-key` made through the API, kept 0600 beside the master key, with streamed and
non-streamed requests on two model groups already in its spend; run again on the same
data directory, it makes no second key, even when the key's file was lost."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import aiohttp

from broker.demo_seed import DEMO_KEY_ALIAS, DEMO_TRAFFIC
from tests.broker.processes import Process, free_port, switchboard, wait_ready
from tests.waiting import eventually


async def _up_once(tmp_path: Path, data: Path, name: str) -> tuple[str, dict[str, Any]]:
    """Run `up --demo` on `data` until the demo key's traffic is in the spend logs: the
    demo key, and what the master key's /key/list says of keys aliased `demo-key`."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ("up", "--demo", "--port", str(port), "--data-dir", str(data))
    key_file = data / "demo-key"
    async with (
        switchboard(*args, directory=tmp_path, redis_url=None, name=name) as up,
        aiohttp.ClientSession(base) as http,
    ):
        await wait_ready(base, workers=1, processes=(up,), key_file=data / "demo-master-key")
        master = (data / "demo-master-key").read_text(encoding="utf-8").strip()
        admin = {"Authorization": f"Bearer {master}"}

        async def announced() -> bool:
            return f"in {key_file}" in up.output()

        await eventually(announced, what="up printed where the demo key is")
        key = key_file.read_text(encoding="utf-8").strip()
        assert key.startswith("sk-") and key not in up.output()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

        async def traffic_logged() -> bool:
            async with http.get("/spend/logs", params={"api_key": key}, headers=admin) as response:
                rows = await response.json()
            return response.status == 200 and len(rows) >= len(DEMO_TRAFFIC)

        await eventually(traffic_logged, what="the demo's requests reached the spend logs")
        async with http.get("/spend/logs", params={"api_key": key}, headers=admin) as response:
            rows = await response.json()
        assert {row["model_group"] for row in rows} >= {"demo", "demo-fast"}, rows
        assert all(row["spend"] > 0 for row in rows), rows
        async with http.get(
            "/key/list",
            params={"key_alias": DEMO_KEY_ALIAS, "return_full_object": "true"},
            headers=admin,
        ) as response:
            listed = await response.json()
        # The demo key may call the playground's models: /v1/models lists them for it.
        async with http.get("/v1/models", headers={"Authorization": f"Bearer {key}"}) as got:
            models = {m["id"] for m in (await got.json())["data"]}
        assert {"demo", "demo-fast"} <= models
        assert await up.stop() == 0
        _no_key_in(up, key)
    return key, listed


def _no_key_in(up: Process, key: str) -> None:
    assert key not in up.output()


async def test_up_demo_makes_a_demo_key_with_traffic_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key, listed = await _up_once(tmp_path, data, "first")
    assert listed["total_count"] == 1
    (row,) = listed["keys"]
    assert row["max_budget"] > 0 and row["spend"] > 0, row
    again, listed = await _up_once(tmp_path, data, "second")
    assert again == key and listed["total_count"] == 1
    # The file lost, the key kept: the same key gets a new secret, not a twin.
    (data / "demo-key").unlink()
    regenerated, listed = await _up_once(tmp_path, data, "third")
    assert regenerated != key and listed["total_count"] == 1
