"""A batch's lines go through the key's admission (issue #17): a database key's budget,
once spent, refuses the remaining lines with LiteLLM's budget error, and the batch ends
cleanly with every custom_id once across its output and error files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.broker.batches.sdk import Clients, chat_lines, clients, finished, lines_of
from tests.broker.harness import make_config, service, wait_until
from tests.broker.management.conftest import general
from tests.broker.tenancy.conftest import Gateway
from tests.db_fixtures import *  # noqa: F403  (database_url, database: both backends)
from workers.db.engine import Database
from workers.testing.server import FakeUpstream

__all__ = ["clients"]

TINY = 0.0000001
LINES = 8


@pytest.fixture
async def gateway(
    database: Database, database_url: str, namespace: str, fake: FakeUpstream, tmp_path: Path
) -> AsyncIterator[Gateway]:
    settings = {
        "files": f"{{storage_dir: '{tmp_path / 'files'}'}}",
        # One line at a time: each line's spend is counted before the next is admitted.
        "batches": "{lease_s: 1.0, window: 1}",
    }
    config = make_config(
        fake.base_url + "/v1", namespace, general=general(database_url), settings=settings
    )
    async with service(config, workers=1) as (doors, workers), aiohttp.ClientSession() as http:
        yield Gateway(doors, workers, http)


async def test_a_spent_budget_fails_the_remaining_lines_and_the_batch_ends(
    gateway: Gateway, clients: Clients
) -> None:
    key = await gateway.new_key(max_budget=TINY)
    sdk = clients(gateway.doors[0].url, key)
    uploaded = await sdk.files.create(file=("in.jsonl", chat_lines(LINES)), purpose="batch")
    batch = await sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await finished(sdk, batch.id, timeout_s=60)
    assert done.status == "completed", done
    output = await lines_of(sdk, done.output_file_id)
    errors = await lines_of(sdk, done.error_file_id)
    ids = sorted(line["custom_id"] for line in output + errors)
    assert ids == sorted(f"req-{i}" for i in range(LINES))
    assert output, "the first line ran before the budget was spent"
    assert errors, "the budget refused the rest"
    for line in errors:
        assert line["response"]["status_code"] == 422, line
        assert line["response"]["body"]["error"]["type"] == "budget_exceeded", line
    # The spend ledger has each line that ran, tagged with the batch's id.
    rows: list[dict[str, object]] = []

    async def ledgered() -> bool:
        rows[:] = await gateway.api.ok("GET", "/spend/logs", api_key=key)
        return len(rows) >= len(output)

    await wait_until(ledgered, timeout_s=10.0)
    assert all(f"batch:{batch.id}" in row["request_tags"] for row in rows), rows  # type: ignore[operator]
