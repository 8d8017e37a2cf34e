"""Helpers the batch tests share: a service with a file store, SDK clients, input files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.types import Batch

from broker.config.loader import Config
from tests.broker.harness import make_config
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

KEY_A = "sk-key-a-0123456789"
KEY_B = "sk-key-b-0123456789"
API_KEYS = "[{alias: a, key: " + KEY_A + "}, {alias: b, key: " + KEY_B + "}]"


def batch_config(
    fake: FakeUpstream, namespace: str, storage: Path, extra_models: str = "", **batches: object
) -> Config:
    options = {"lease_s": 1.0, "window": 16, **batches}
    settings = {
        "files": f"{{storage_dir: '{storage}'}}",
        "batches": "{" + ", ".join(f"{k}: {v}" for k, v in options.items()) + "}",
        "api_keys": API_KEYS,
        "claim_idle_ms": 1000,
        "renew_interval_ms": 200,
        "heartbeat_interval_s": 0.2,
        "worker_ttl_s": 1.0,
        "public_metrics": "true",
    }
    failing = f"""\
- model_name: failing
  litellm_params:
    model: openai/gpt-4o-mini~status=400
    api_base: {fake.base_url}/v1
    api_key: sk-fake
"""
    return make_config(
        fake.base_url + "/v1", namespace, settings=settings, extra_models=failing + extra_models
    )


def chat_lines(count: int, model: str = "gpt-test", start: int = 0) -> bytes:
    lines = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": f"hi {i}"}]},
        }
        for i in range(start, start + count)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


class Clients:
    def __init__(self) -> None:
        self.made: list[AsyncOpenAI] = []

    def __call__(self, url: str, key: str = KEY_A) -> AsyncOpenAI:
        made = AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        self.made.append(made)
        return made


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    made = Clients()
    yield made
    for client in made.made:
        await client.close()


async def finished(sdk: AsyncOpenAI, batch_id: str, timeout_s: float = 30.0) -> Batch:
    """The batch once it ended (bounded)."""
    seen: list[Batch] = []

    async def has_ended() -> bool:
        seen.append(await sdk.batches.retrieve(batch_id))
        return seen[-1].status in ("completed", "failed", "expired", "cancelled")

    await eventually(has_ended, what=f"batch {batch_id} ending", timeout_s=timeout_s, poll_s=0.2)
    return seen[-1]


async def lines_of(sdk: AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    content = (await sdk.files.content(file_id)).content
    return [json.loads(line) for line in content.splitlines()]
