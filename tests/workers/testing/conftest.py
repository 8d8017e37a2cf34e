"""Fixtures for the fake-upstream tests: a started fake and SDK clients pointed at it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.wire_examples import example_path
from workers.testing import FakeUpstream, ThreadedFakeUpstream

API_VERSION = "2024-10-21"
USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Capital of France?"}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream() as server:
        yield server


@pytest.fixture
async def client(fake: FakeUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake.base_url + "/v1", api_key="sk-test-123", max_retries=0, timeout=10
    ) as sdk:
        yield sdk


@pytest.fixture
async def azure_client(fake: FakeUpstream) -> AsyncIterator[openai.AsyncAzureOpenAI]:
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=fake.base_url,
        api_key="az-key-123",
        api_version=API_VERSION,
        max_retries=0,
        timeout=10,
    ) as sdk:
        yield sdk


@pytest.fixture
def threaded_fake() -> Iterator[ThreadedFakeUpstream]:
    with FakeUpstream.in_thread() as server:
        yield server


def example_json(provider: str, name: str) -> Any:
    return json.loads(example_path(provider, name).read_bytes())


def example_events(provider: str, name: str) -> list[str]:
    return sse_payloads(example_path(provider, name).read_bytes())


def sse_payloads(body: bytes) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    events = body.decode().replace("\r\n", "\n").split("\n\n")
    return [event.removeprefix("data: ") for event in events if event.strip()]
