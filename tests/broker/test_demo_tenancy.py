"""The newcomer's path on `switchboard up --demo`: the master key from the data directory
makes a key with a budget; the key is served, its spend appears, and it stops at its limit
(the README's quick start; issues #17 and #21)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.broker.processes import free_port, switchboard, wait_ready
from tests.waiting import eventually

HELLO = [{"role": "user", "content": "Hello!"}]


async def test_a_demo_key_with_a_budget_is_served_metered_and_stopped(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    args = ("up", "--demo", "--port", str(port), "--data-dir", str(data))
    base = f"http://127.0.0.1:{port}"
    async with (
        switchboard(*args, directory=tmp_path, redis_url=None) as up,
        aiohttp.ClientSession() as http,
    ):
        await wait_ready(base, workers=1, processes=(up,), key_file=data / "demo-master-key")
        master = (data / "demo-master-key").read_text(encoding="utf-8").strip()
        admin = {"Authorization": f"Bearer {master}"}
        async with http.post(
            base + "/key/generate",
            json={"key_alias": "newcomer", "max_budget": 0.00002, "models": ["demo-fast"]},
            headers=admin,
        ) as response:
            assert response.status == 200, await response.text()
            key = (await response.json())["key"]
        caller = {"Authorization": f"Bearer {key}"}
        statuses: list[int] = []
        refusal: dict[str, Any] = {}
        for _ in range(40):
            async with http.post(
                base + "/v1/chat/completions",
                json={"model": "demo-fast", "messages": HELLO},
                headers=caller,
            ) as response:
                statuses.append(response.status)
                if response.status != 200:
                    refusal = await response.json()
                    break
        assert statuses[0] == 200 and statuses[-1] == 422, statuses
        assert refusal["error"]["code"] == "budget_exceeded", refusal
        # A model outside the key's list is refused by name.
        async with http.post(
            base + "/v1/chat/completions",
            json={"model": "demo", "messages": HELLO},
            headers=caller,
        ) as response:
            assert response.status in (401, 403), await response.text()

        async def spend_recorded() -> bool:
            async with http.get(base + "/key/info", params={"key": key}, headers=admin) as got:
                info = (await got.json())["info"]
                return bool(info["spend"] > 0)

        await eventually(spend_recorded, what="the key's spend reached the database")
        assert await up.stop() == 0
