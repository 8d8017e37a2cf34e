"""Two front doors and a worker on one Redis and one database (each backend), a fake
upstream, and clients for the management API and for inference."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from tests.broker.harness import RunningFrontDoor, RunningWorker, make_config, service
from tests.broker.management.conftest import MASTER, Api, general
from tests.db_fixtures import *  # noqa: F403  (database_url, database: both backends)
from workers.db.engine import Database
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hi"}]
# Output tokens only, at a price that makes a reservation of max_tokens worth counting.
PRICED = """\
- model_name: priced
  litellm_params:
    model: openai/gpt-4o-mini
    api_base: {base}
    api_key: sk-fake
    input_cost_per_token: 0
    output_cost_per_token: 0.0001
- model_name: priced-slow
  litellm_params:
    model: openai/gpt-4o-mini~chunk_delay=0.1~chunks=30
    api_base: {base}
    api_key: sk-fake
    input_cost_per_token: 0
    output_cost_per_token: 0.0001
- model_name: "openai/*"
  litellm_params:
    model: "openai/*"
    api_base: {base}
    api_key: sk-fake
"""


class Gateway:
    def __init__(
        self,
        doors: list[RunningFrontDoor],
        workers: list[RunningWorker],
        http: aiohttp.ClientSession,
    ) -> None:
        self.doors = doors
        self.workers = workers
        self.http = http
        self.api = Api(http, doors[0].url)

    async def new_key(self, **fields: Any) -> str:
        answer = await self.api.ok("POST", "/key/generate", fields)
        return str(answer["key"])

    async def chat(
        self, key: str, *, door: int = 0, model: str = "gpt-test", **body: Any
    ) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        payload = {"model": model, "messages": HELLO, **body}
        async with self.http.post(
            self.doors[door].url + "/v1/chat/completions",
            json=payload,
            headers={"Authorization": f"Bearer {key}"},
        ) as reply:
            # Case-insensitive, as HTTP headers are.
            return reply.status, await reply.json(content_type=None), reply.headers.copy()


@pytest.fixture
async def gateway(
    request: pytest.FixtureRequest,
    database: Database,
    database_url: str,
    namespace: str,
    fake: FakeUpstream,
) -> AsyncIterator[Gateway]:
    """Parametrize indirectly with config text to append after general_settings."""
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        general=general(database_url) + getattr(request, "param", ""),
        extra_models=PRICED.format(base=fake.base_url + "/v1"),
    )
    async with (
        service(config, workers=1, front_doors=2) as (doors, workers),
        aiohttp.ClientSession() as http,
    ):
        yield Gateway(doors, workers, http)


__all__ = ["HELLO", "MASTER", "Gateway"]
