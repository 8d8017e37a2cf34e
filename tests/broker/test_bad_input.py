"""Bad input gets a clear OpenAI-style error with the right status, nothing crashes, and
nothing reaches the queue or the provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.broker.harness import RunningFrontDoor, make_config, service
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hi"}]
KEY = "sk-master-test"


@pytest.fixture
async def door(fake: FakeUpstream, namespace: str) -> AsyncIterator[RunningFrontDoor]:
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        settings={"max_body_bytes": 4096},
        general=f"general_settings:\n  master_key: {KEY}\n",
    )
    async with service(config) as ([front], _workers):
        yield front


async def call(
    door: RunningFrontDoor,
    *,
    data: bytes | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
) -> tuple[int, dict[str, Any]]:
    sent = {"Authorization": f"Bearer {KEY}", **(headers or {})}
    async with (
        aiohttp.ClientSession() as http,
        http.post(door.url + path, data=data, json=json, headers=sent) as response,
    ):
        return response.status, await response.json(content_type=None)


def assert_openai_error(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error  # type: ignore[no-any-return]


CASES: list[tuple[str, dict[str, Any], int, str | None, str | None]] = [
    # (case, request, status, param, code)
    (
        "malformed JSON",
        {
            "data": b'{"model": "gpt-test", "messages": [',
            "headers": {"Content-Type": "application/json"},
        },
        400,
        None,
        "invalid_json",
    ),
    (
        "wrong type",
        {"json": {"model": "gpt-test", "messages": HELLO, "n": "two"}},
        400,
        "n",
        "invalid_value",
    ),
    (
        "wrong message role",
        {"json": {"model": "gpt-test", "messages": [{"role": "x", "content": "a"}]}},
        400,
        "messages[0].role",
        "invalid_value",
    ),
    ("missing messages", {"json": {"model": "gpt-test"}}, 400, "messages", "invalid_value"),
    ("missing model", {"json": {"messages": HELLO}}, 400, "model", "invalid_value"),
    (
        "empty messages",
        {"json": {"model": "gpt-test", "messages": []}},
        400,
        "messages",
        "empty_array",
    ),
    (
        "invalid n",
        {"json": {"model": "gpt-test", "messages": HELLO, "n": 0}},
        400,
        "n",
        "invalid_value",
    ),
    (
        "invalid temperature",
        {"json": {"model": "gpt-test", "messages": HELLO, "temperature": 3}},
        400,
        "temperature",
        "invalid_value",
    ),
    (
        "stream_options without stream",
        {
            "json": {
                "model": "gpt-test",
                "messages": HELLO,
                "stream_options": {"include_usage": True},
            }
        },
        400,
        "stream_options",
        "invalid_value",
    ),
    (
        "tool message without id",
        {"json": {"model": "gpt-test", "messages": [{"role": "tool", "content": "42"}]}},
        400,
        "messages[0].tool_call_id",
        "missing_required_parameter",
    ),
    (
        "function tool without its function",
        {"json": {"model": "gpt-test", "messages": HELLO, "tools": [{"type": "function"}]}},
        400,
        "tools[0].function",
        "missing_required_parameter",
    ),
    (
        "function tool whose parameters are not an object schema",
        {
            "json": {
                "model": "gpt-test",
                "messages": HELLO,
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "string"}},
                    }
                ],
            }
        },
        400,
        "tools[0].function.parameters",
        "invalid_value",
    ),
    (
        "function tool with an empty name",
        {
            "json": {
                "model": "gpt-test",
                "messages": HELLO,
                "tools": [{"type": "function", "function": {"name": ""}}],
            }
        },
        400,
        "tools[0].function.name",
        "invalid_value",
    ),
    (
        "negative timeout",
        {"json": {"model": "gpt-test", "messages": HELLO, "timeout": -1}},
        400,
        "timeout",
        "invalid_value",
    ),
    (
        "wrong content type",
        {
            "data": b"model=gpt-test",
            "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        },
        415,
        "Content-Type",
        "unsupported_media_type",
    ),
    (
        "oversized body",
        {"json": {"model": "gpt-test", "messages": [{"role": "user", "content": "x" * 8000}]}},
        413,
        None,
        "request_too_large",
    ),
    (
        "empty body",
        {"data": b"", "headers": {"Content-Type": "application/json"}},
        400,
        None,
        "invalid_json",
    ),
]


@pytest.mark.parametrize(
    ("case", "request_", "status", "param", "code"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_request_is_refused_with_an_openai_error(
    door: RunningFrontDoor,
    redis: Redis,
    namespace: str,
    fake: FakeUpstream,
    case: str,
    request_: dict[str, Any],
    status: int,
    param: str | None,
    code: str | None,
) -> None:
    got_status, body = await call(door, **request_)
    assert got_status == status, body
    error = assert_openai_error(body)
    assert error["param"] == param
    assert error["code"] == code
    assert error["type"] == "invalid_request_error"
    # Nothing was enqueued, nothing reached the provider.
    assert await redis.xlen(Keys(namespace).lane("default")) == 0
    assert fake.request_count == 0


async def test_unknown_model_is_404_listing_the_models(door: RunningFrontDoor) -> None:
    status, body = await call(door, json={"model": "gpt-nope", "messages": HELLO})
    assert status == 404
    error = assert_openai_error(body)
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "gpt-test" in error["message"] and "groq-test" in error["message"]


async def test_unsupported_parameter_for_the_provider_names_it(door: RunningFrontDoor) -> None:
    status, body = await call(
        door, json={"model": "groq-test", "messages": HELLO, "logit_bias": {"1": 5}}
    )
    assert status == 400
    error = assert_openai_error(body)
    assert (error["param"], error["code"]) == ("logit_bias", "unsupported_parameter")
    assert "groq" in error["message"]


async def test_unsupported_parameter_with_drop_params_succeeds(
    door: RunningFrontDoor, fake: FakeUpstream
) -> None:
    status, _ = await call(
        door,
        json={"model": "groq-test", "messages": HELLO, "logit_bias": {"1": 5}, "drop_params": True},
    )
    assert status == 200
    sent = fake.requests[-1].json
    assert "logit_bias" not in sent and "drop_params" not in sent


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"x-api-key": "wrong"}])
async def test_missing_or_wrong_key_is_401(door: RunningFrontDoor, headers: dict[str, str]) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            door.url + "/v1/chat/completions",
            json={"model": "gpt-test", "messages": HELLO},
            headers=headers,
        ) as response,
    ):
        assert response.status == 401
        error = assert_openai_error(await response.json())
    assert error["type"] == "authentication_error"
    assert KEY not in error["message"]


async def test_x_api_key_header_is_accepted(door: RunningFrontDoor) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            door.url + "/v1/chat/completions",
            json={"model": "gpt-test", "messages": HELLO},
            headers={"x-api-key": KEY},
        ) as response,
    ):
        assert response.status == 200


async def test_unknown_route_and_method_are_openai_errors(door: RunningFrontDoor) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(door.url + "/v1/nothing") as response:
            assert response.status == 404
            assert_openai_error(await response.json())
        async with http.get(door.url + "/v1/chat/completions") as response:
            assert response.status == 405
            assert_openai_error(await response.json())
