"""Claude on Vertex AI in the fake (rawPredict, streamRawPredict, count-tokens) and Google's
OAuth token endpoint, proven by the official clients: the anthropic SDK's
`AsyncAnthropicVertex` with google-auth service-account credentials whose `token_uri` is the
fake, streaming and not; then what the fake refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic import AsyncAnthropicVertex
from google.oauth2 import service_account as google_service_account

from tests.claude_sdk import read_stream
from workers.testing import FakeUpstream
from workers.testing.google_oauth import SCOPE, authority, service_account

MODEL = "claude-sonnet-4-5@20250929"
PROJECT = "switchboard-test"
REGION = "us-east5"
HELLO: Any = [{"role": "user", "content": "Capital of France?"}]
TOOLS: Any = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]
MODELS = f"/v1/projects/{PROJECT}/locations/{REGION}/publishers/anthropic/models"


@pytest.fixture
async def sdk(fake: FakeUpstream) -> AsyncIterator[Any]:
    """Untyped: the SDK's TypedDict parameters would make every literal body a cast."""
    info = service_account(fake.base_url + "/token", project=PROJECT)
    credentials = google_service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    async with AsyncAnthropicVertex(
        region=REGION,
        project_id=PROJECT,
        credentials=credentials,
        base_url=fake.base_url + "/v1",
        max_retries=0,
        timeout=10,
    ) as client:
        yield client


async def test_raw_predict_answers_the_sdk_with_a_message(fake, sdk):
    message = await sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert message.type == "message" and message.stop_reason == "end_turn"
    assert message.content[0].text == f"This is a fake reply from {MODEL}."
    token, predict = fake.state.requests
    assert token.path == "/token" and token.method == "POST"
    assert predict.path == f"{MODELS}/{MODEL}:rawPredict"
    assert set(predict.json) == {"max_tokens", "messages", "anthropic_version"}
    assert predict.headers["Authorization"].startswith("Bearer ya29.fake-")


async def test_stream_raw_predict_is_anthropics_sse(fake, sdk):
    async with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].text == f"This is a fake reply from {MODEL}."
    assert final.usage.output_tokens > 0
    received = fake.state.requests[-1]
    assert received.path == f"{MODELS}/{MODEL}:streamRawPredict"
    assert received.json["stream"] is True and "model" not in received.json


async def test_tool_use_and_count_tokens(fake, sdk):
    tools = await sdk.messages.create(
        model=MODEL + "~tools=2", max_tokens=64, messages=HELLO, tools=TOOLS
    )
    assert tools.stop_reason == "tool_use"
    assert [b.name for b in tools.content if b.type == "tool_use"] == ["get_weather"] * 2
    counted = await sdk.messages.count_tokens(model=MODEL, messages=HELLO)
    assert counted.input_tokens > 0
    received = fake.state.requests[-1]
    assert received.path == f"{MODELS}/count-tokens:rawPredict"
    assert received.json["model"] == MODEL


async def test_one_token_serves_until_it_is_due(fake, sdk):
    for _ in range(3):
        await sdk.messages.create(model=MODEL, max_tokens=16, messages=HELLO)
    assert authority(fake.state).grants == 1


async def test_failures_are_what_vertex_sends(fake, sdk):
    with pytest.raises(anthropic.RateLimitError) as limited:
        await sdk.messages.create(model=MODEL + "~status=429", max_tokens=64, messages=HELLO)
    quota: Any = limited.value.body
    assert quota["error"]["status"] == "RESOURCE_EXHAUSTED"
    with pytest.raises(anthropic.InternalServerError):
        await sdk.messages.create(model=MODEL + "~status=529", max_tokens=64, messages=HELLO)
    with pytest.raises(anthropic.APIStatusError) as failed:
        await read_stream(sdk, MODEL + "~stream_error_after=1", HELLO)
    broken: Any = failed.value.body
    assert broken["error"]["type"] == "overloaded_error"


async def test_what_the_fake_refuses(fake):
    url = f"{fake.base_url}{MODELS}/{MODEL}:rawPredict"
    body = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 9, "messages": HELLO}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body) as reply:
            assert reply.status == 401
            assert (await reply.json())["error"]["status"] == "UNAUTHENTICATED"
        bogus = {"Authorization": "Bearer ya29.not-issued"}
        async with session.post(url, json=body, headers=bogus) as reply:
            assert reply.status == 401
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "a.b.c"}
        async with session.post(fake.base_url + "/token", data=form) as reply:
            assert reply.status == 400
            assert (await reply.json())["error"] == "invalid_grant"
