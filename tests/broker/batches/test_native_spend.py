"""A native batch's spend (issue #20): each line the provider ran is charged once to the
batch's database key at the batch price, as a spend row tagged with the batch id, and
counts against the key's budget; a key whose budget is already spent hands nothing over
and every line fails with the budget error."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.broker.batches.sdk import Clients, clients, finished, lines_of
from tests.broker.harness import make_config, service, wait_until
from tests.broker.management.conftest import general
from tests.broker.tenancy.conftest import Gateway
from tests.db_fixtures import *  # noqa: F403  (database_url, database: both backends)
from workers.db.engine import Database
from workers.testing.server import FakeUpstream

__all__ = ["clients"]

LINES = 6
NATIVE = """\
- model_name: gpt-native
  litellm_params:
    model: openai/gpt-4o-mini
    api_base: {base}/v1
    api_key: sk-native
  model_info:
    batch_mode: native
"""


@pytest.fixture
async def gateway(
    database: Database, database_url: str, namespace: str, fake: FakeUpstream, tmp_path: Path
) -> AsyncIterator[Gateway]:
    settings = {
        "files": f"{{storage_dir: '{tmp_path / 'files'}'}}",
        "batches": "{lease_s: 1.0, native_poll_s: 0.1, native_max_poll_s: 0.2}",
    }
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        general=general(database_url),
        settings=settings,
        extra_models=NATIVE.format(base=fake.base_url),
    )
    async with service(config, workers=1) as (doors, workers), aiohttp.ClientSession() as http:
        yield Gateway(doors, workers, http)


def input_file() -> bytes:
    rows = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-native", "messages": [{"role": "user", "content": f"{i}"}]},
        }
        for i in range(LINES)
    ]
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


async def run_batch(sdk: Any) -> tuple[str, Any]:
    uploaded = await sdk.files.create(file=("in.jsonl", input_file()), purpose="batch")
    batch = await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    return str(batch.id), await finished(sdk, batch.id, timeout_s=60)


async def test_each_native_line_is_a_spend_row_of_the_batch_key(
    gateway: Gateway, clients: Clients
) -> None:
    key = await gateway.new_key(max_budget=100.0)
    sdk = clients(gateway.doors[0].url, key)
    batch_id, done = await run_batch(sdk)
    assert done.status == "completed", done
    cost = done.model_extra["cost_usd"]
    assert cost > 0
    rows: list[dict[str, Any]] = []

    async def ledgered() -> bool:
        rows[:] = await gateway.api.ok("GET", "/spend/logs", api_key=key)
        return len(rows) >= LINES

    await wait_until(ledgered, timeout_s=10.0)
    assert len(rows) == LINES
    assert all(f"batch:{batch_id}" in row["request_tags"] for row in rows), rows
    assert sum(float(row["spend"]) for row in rows) == pytest.approx(cost)
    spent: list[float] = []

    async def key_charged() -> bool:
        info = await gateway.api.ok("GET", "/key/info", key=key)
        spent[:] = [float(info["info"]["spend"])]
        return spent[0] > 0

    await wait_until(key_charged, timeout_s=10.0)
    assert spent[0] == pytest.approx(cost)


async def test_a_spent_budget_hands_nothing_over(
    gateway: Gateway, clients: Clients, fake: FakeUpstream
) -> None:
    key = await gateway.new_key(max_budget=0.0000001)
    sdk = clients(gateway.doors[0].url, key)
    first_id, first = await run_batch(sdk)  # spends past the tiny budget
    assert first.status == "completed"
    await wait_until(lambda: gateway.api.ok("GET", "/spend/logs", api_key=key), timeout_s=10.0)
    _, done = await run_batch(sdk)
    assert done.status == "completed", done
    errors = await lines_of(sdk, done.error_file_id)
    assert sorted(line["custom_id"] for line in errors) == sorted(f"req-{i}" for i in range(LINES))
    assert {line["response"]["status_code"] for line in errors} == {422}
    created = [r for r in fake.requests if r.method == "POST" and r.path == "/v1/batches"]
    assert len(created) == 1  # only the first batch went to the provider
