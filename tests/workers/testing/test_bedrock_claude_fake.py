"""Claude on Bedrock in the fake (InvokeModel, InvokeModelWithResponseStream, CountTokens),
proven by the official clients parsing what it sends: the anthropic SDK's `AnthropicBedrock`
(SigV4-signed, pointed at the fake by base_url), streaming and not, and botocore for the raw
frames and CountTokens."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import boto3
import pytest
from anthropic import AsyncAnthropicBedrock
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer

from tests.claude_sdk import read_stream
from workers.testing import FakeUpstream, ThreadedFakeUpstream
from workers.testing.bedrock_claude import anthropic_model

MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
HELLO: Any = [{"role": "user", "content": "Capital of France?"}]
TOOLS: Any = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]
VERSION = {"anthropic_version": "bedrock-2023-05-31"}


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """botocore reads the environment and ~/.aws; tests use only what they pass."""
    for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
async def sdk(fake: FakeUpstream) -> AsyncIterator[Any]:
    """Untyped: the SDK's TypedDict parameters would make every literal body a cast."""
    async with AsyncAnthropicBedrock(
        base_url=fake.base_url,
        aws_access_key=KEY_ID,
        aws_secret_key=SECRET,
        aws_region="us-east-1",
        max_retries=0,
        timeout=10,
    ) as client:
        yield client


def test_bedrock_ids_name_the_model_as_anthropic_does():
    assert anthropic_model(MODEL) == "claude-sonnet-4-5-20250929"
    assert anthropic_model("anthropic.claude-3-5-sonnet-20241022-v2:0") == (
        "claude-3-5-sonnet-20241022"
    )
    assert anthropic_model("arn:aws:bedrock:us-east-1:1:inference-profile/x") == (
        "arn:aws:bedrock:us-east-1:1:inference-profile/x"
    )


async def test_invoke_answers_the_sdk_with_a_message(fake, sdk):
    message = await sdk.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert message.type == "message" and message.model == "claude-sonnet-4-5-20250929"
    assert message.content[0].text == f"This is a fake reply from {MODEL}."
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    (received,) = fake.state.requests
    assert received.path == f"/model/{MODEL}/invoke"
    # The SDK moved model and stream to the URL and named its version in the body.
    assert set(received.json) == {"max_tokens", "messages", "anthropic_version"}


async def test_stream_is_chunk_frames_the_sdk_turns_into_anthropic_events(fake, sdk):
    async with sdk.messages.stream(model=MODEL, max_tokens=64, messages=HELLO) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].text == f"This is a fake reply from {MODEL}."
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0
    assert fake.state.requests[-1].path == f"/model/{MODEL}/invoke-with-response-stream"


async def test_tool_use_streams_with_input_json_deltas(sdk):
    async with sdk.messages.stream(
        model=MODEL + "~tools=2", max_tokens=64, messages=HELLO, tools=TOOLS
    ) as stream:
        final = await stream.get_final_message()
    uses = [block for block in final.content if block.type == "tool_use"]
    assert final.stop_reason == "tool_use" and len(uses) == 2
    assert uses[0].name == "get_weather" and isinstance(uses[0].input, dict)


async def test_failures_are_bedrock_exceptions_the_sdk_raises(sdk):
    with pytest.raises(anthropic.RateLimitError):
        await sdk.messages.create(model=MODEL + "~status=429", max_tokens=64, messages=HELLO)
    with pytest.raises(anthropic.APIStatusError) as failed:
        await read_stream(sdk, MODEL + "~stream_error_after=1", HELLO)
    # The SDK turns the exception frame into Anthropic's in-stream error event.
    error: Any = failed.value.body
    assert error["error"]["type"] == "internalServerException"


async def test_a_body_bedrock_would_refuse_is_a_validation_exception(fake):
    bearer = {"Authorization": "Bearer br-key"}
    url = f"{fake.base_url}/model/{MODEL}/invoke"
    cases = [
        ({"max_tokens": 9, "messages": HELLO}, "anthropic_version"),
        ({**VERSION, "model": MODEL, "max_tokens": 9, "messages": HELLO}, "[model]"),
        ({**VERSION, "stream": True, "max_tokens": 9, "messages": HELLO}, "[stream]"),
        ({**VERSION, "anthropic_beta": "x", "max_tokens": 9, "messages": HELLO}, "beta"),
    ]
    async with aiohttp.ClientSession() as session:
        for body, named in cases:
            async with session.post(url, json=body, headers=bearer) as reply:
                assert reply.status == 400
                assert reply.headers["x-amzn-ErrorType"].startswith("ValidationException")
                assert named in (await reply.json())["message"]


def test_raw_frames_carry_anthropic_events_as_base64_chunks(threaded_fake: ThreadedFakeUpstream):
    """What botocore reads off the wire: `chunk` events whose bytes are each one Anthropic
    event's JSON, message_stop with Bedrock's invocation metrics; and CountTokens."""
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=threaded_fake.base_url,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(retries={"total_max_attempts": 1}),
    )
    body = json.dumps({**VERSION, "max_tokens": 64, "messages": HELLO})
    reply = client.invoke_model_with_response_stream(modelId=MODEL, body=body)
    events = [json.loads(event["chunk"]["bytes"]) for event in reply["body"]]
    assert [e["type"] for e in events][:2] == ["message_start", "content_block_start"]
    assert events[-1]["type"] == "message_stop"
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] > 0
    counted = client.count_tokens(modelId=MODEL, input={"invokeModel": {"body": body.encode()}})
    assert counted["inputTokens"] > 0
    client.close()


async def test_each_frame_is_a_padded_chunk_event(fake):
    bearer = {"Authorization": "Bearer br-key"}
    url = f"{fake.base_url}/model/{MODEL}/invoke-with-response-stream"
    body = {**VERSION, "max_tokens": 64, "messages": HELLO}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=body, headers=bearer) as reply:
            assert reply.headers["Content-Type"] == "application/vnd.amazon.eventstream"
            raw = await reply.read()
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    for message in buffer:
        assert message.headers[":event-type"] == "chunk"
        assert message.headers[":message-type"] == "event"
        payload = json.loads(message.payload)
        assert set(payload) == {"bytes", "p"}
        assert json.loads(base64.b64decode(payload["bytes"]))["type"]
