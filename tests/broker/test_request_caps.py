"""What one request may ask of the gateway (issue #13, item 2): inputs per embeddings
request, estimated tokens per input and per request. Past a cap the front door answers 400
naming the field, and nothing is queued or sent upstream; the SDK refuses the same."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.broker.harness import make_config, service
from workers.errors import InvalidRequest
from workers.redis_streams import Keys
from workers.sdk import calls as sdk
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hi"}]


async def send(url: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(url + path, json=body) as response:
        return response.status, await response.json(content_type=None)


async def test_five_thousand_embedding_inputs_are_a_400_naming_input(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    inputs = [f"text {i}" for i in range(5000)]
    async with service(config) as ([door], _):
        status, body = await send(
            door.url, "/v1/embeddings", {"model": "embed-test", "input": inputs}
        )
        assert status == 400, body
        error = body["error"]
        assert error["type"] == "invalid_request_error"
        assert error["param"] == "input"
        assert error["code"] == "too_many_inputs"
        assert "at most 2048" in error["message"] and "got 5000" in error["message"]
        assert "max_embedding_inputs" in error["message"]
        assert await redis.xlen(Keys(namespace).lane("default")) == 0
        assert fake.request_count == 0
        # OpenAI's own limit itself is fine.
        status, body = await send(
            door.url, "/v1/embeddings", {"model": "embed-test", "input": inputs[:2048]}
        )
        assert status == 200, body
        assert len(body["data"]) == 2048


async def test_the_caps_come_from_switchboard_settings(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    settings = {
        "max_embedding_inputs": 3,
        "max_embedding_input_tokens": 10,
        "max_request_tokens": 100,
    }
    config = make_config(fake.base_url + "/v1", namespace, settings=settings)
    long_chat = [{"role": "user", "content": "word " * 200}]
    cases: list[tuple[str, dict[str, Any], str, str | None]] = [
        ("/v1/embeddings", {"model": "embed-test", "input": ["a"] * 4}, "input", "too_many_inputs"),
        (
            "/v1/embeddings",
            {"model": "embed-test", "input": ["short", "x" * 100]},
            "input[1]",
            "input_too_long",
        ),
        # Token arrays count exactly: 11 ids are 11 tokens.
        ("/v1/embeddings", {"model": "embed-test", "input": [list(range(11))]}, "input[0]", None),
        (
            "/v1/chat/completions",
            {"model": "gpt-test", "messages": long_chat},
            "messages",
            "too_many_tokens",
        ),
    ]
    async with service(config) as ([door], _):
        for path, request, param, code in cases:
            status, body = await send(door.url, path, request)
            assert status == 400, (request, body)
            assert body["error"]["param"] == param
            assert code is None or body["error"]["code"] == code
        assert await redis.xlen(Keys(namespace).lane("default")) == 0
        assert fake.request_count == 0
        # Under the caps, all is well.
        for ok in (["a", "b", "x" * 36], [list(range(10))]):
            request = {"model": "embed-test", "input": ok}
            status, body = await send(door.url, "/v1/embeddings", request)
            assert status == 200, body


async def test_the_sdk_refuses_five_thousand_inputs_before_calling_upstream(
    fake: FakeUpstream,
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await sdk.aembedding(
            "openai/text-embedding-3-small",
            ["a"] * 5000,
            api_base=fake.base_url + "/v1",
            api_key="sk-test",
        )
    assert caught.value.param == "input"
    assert caught.value.code == "too_many_inputs"
    assert fake.request_count == 0
