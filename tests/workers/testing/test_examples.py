"""The fakes' bytes have the structure of the real providers' (the shared wire examples).

Ids, timestamps and texts differ; keys, nesting, value types and event order must not.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from workers.testing import FakeUpstream

from .conftest import API_VERSION, USER, example_events, example_json, sse_payloads

SSE = "text/event-stream; charset=utf-8"


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and value types, a list by its first item."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


def event_shapes(payloads: list[str]) -> list[Any]:
    return [payload if payload == "[DONE]" else shape(json.loads(payload)) for payload in payloads]


def collapsed(shapes: list[Any]) -> list[Any]:
    """Runs of equal shapes as one (streams differ in how many fragments they send)."""
    return [s for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1]]


async def post(
    fake: FakeUpstream, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    headers = headers if headers is not None else {"Authorization": "Bearer sk-test"}
    async with aiohttp.ClientSession() as http:
        async with http.post(fake.base_url + path, json=body, headers=headers) as response:
            return response.status, response.headers["Content-Type"], await response.read()


async def openai_chat(fake: FakeUpstream, model: str, **fields: Any) -> tuple[int, str, bytes]:
    return await post(fake, "/v1/chat/completions", {"model": model, "messages": USER, **fields})


async def azure_chat(fake: FakeUpstream, deployment: str, **fields: Any) -> tuple[int, str, bytes]:
    path = f"/openai/deployments/{deployment}/chat/completions?api-version={API_VERSION}"
    return await post(fake, path, {"messages": USER, **fields}, {"api-key": "az-key"})


def assert_sse_framing(body: bytes) -> list[str]:
    payloads = sse_payloads(body)
    assert body == b"".join(b"data: " + p.encode() + b"\n\n" for p in payloads)
    return payloads


async def test_openai_completion_has_the_example_structure(fake):
    status, content_type, body = await openai_chat(fake, "gpt-4o~cached=1024")
    assert (status, content_type) == (200, "application/json")
    assert shape(json.loads(body)) == shape(example_json("openai", "chat_completion.json"))


async def test_openai_text_stream_matches_the_example_event_by_event(fake):
    status, content_type, body = await openai_chat(
        fake, "gpt-4o", stream=True, stream_options={"include_usage": True}
    )
    assert (status, content_type) == (200, SSE)
    expected = event_shapes(example_events("openai", "chat_stream_text.sse"))
    assert event_shapes(assert_sse_framing(body)) == expected


async def test_openai_tool_call_stream_has_the_example_structure(fake):
    _, _, body = await openai_chat(
        fake, "gpt-4o~tools=2", stream=True, stream_options={"include_usage": True}
    )
    expected = collapsed(event_shapes(example_events("openai", "chat_stream_tool_call.sse")))
    assert collapsed(event_shapes(assert_sse_framing(body))) == expected


async def test_openai_stream_error_matches_the_example(fake):
    _, _, body = await openai_chat(fake, "gpt-4o~stream_error_after=1", stream=True)
    payloads = assert_sse_framing(body)
    assert event_shapes(payloads) == event_shapes(example_events("openai", "chat_stream_error.sse"))
    assert json.loads(payloads[-1]) == json.loads(
        example_events("openai", "chat_stream_error.sse")[-1]
    )


@pytest.mark.parametrize("encoding", ["float", "base64"])
async def test_openai_embeddings_have_the_example_structure(fake, encoding):
    request = {"model": "text-embedding-3-small", "input": "hi", "encoding_format": encoding}
    _, _, body = await post(fake, "/v1/embeddings", request)
    assert shape(json.loads(body)) == shape(example_json("openai", f"embeddings_{encoding}.json"))


@pytest.mark.parametrize(
    ("status", "example"),
    [("429", "error_429_rate_limit.json"), ("context_window", "error_400_context_length.json")],
)
async def test_openai_error_bodies_match_the_examples(fake, status, example):
    code, _, body = await openai_chat(fake, f"gpt-4o~status={status}")
    expected = example_json("openai", example)
    got = json.loads(body)
    assert code == int(example.split("_")[1])
    assert shape(got) == shape(expected)
    for field in ("type", "param", "code"):
        assert got["error"][field] == expected["error"][field]


async def test_openai_invalid_key_body_matches_the_example():
    async with FakeUpstream(api_key="sk-right") as fake:
        status, _, body = await post(
            fake,
            "/v1/chat/completions",
            {"model": "gpt-4o", "messages": USER},
            {"Authorization": "Bearer sk-abcdefxyz"},
        )
    assert status == 401
    assert json.loads(body) == example_json("openai", "error_401_invalid_key.json")


async def test_azure_completion_has_the_example_structure(fake):
    status, _, body = await azure_chat(fake, "my-gpt4o-deployment")
    assert status == 200
    assert shape(json.loads(body)) == shape(example_json("azure", "chat_completion.json"))


async def test_azure_stream_matches_the_example_event_by_event(fake):
    _, content_type, body = await azure_chat(
        fake, "my-gpt4o-deployment", stream=True, stream_options={"include_usage": True}
    )
    assert content_type.startswith("text/event-stream")
    expected = event_shapes(example_events("azure", "chat_stream_text.sse"))
    assert event_shapes(assert_sse_framing(body)) == expected


async def test_azure_error_bodies_match_the_examples(fake):
    status, _, body = await azure_chat(fake, "dep~status=429~retry_after=6")
    assert status == 429
    assert json.loads(body) == example_json("azure", "error_429_rate_limit.json")
    status, _, body = await azure_chat(fake, "dep~status=content_filter")
    assert status == 400
    assert json.loads(body) == example_json("azure", "error_400_content_filter.json")
