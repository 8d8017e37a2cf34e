"""/v1/messages to Claude on Bedrock is a native pass-through through InvokeModel, proven
byte for byte as the Anthropic one is (test_messages_native.py): what the fake received is
what the client sent (without `model` and `stream`, with `anthropic_version`), and what the
client received is what the fake sends for that body — the message JSON, and each stream
event as the base64 `chunk` Bedrock wrapped it in. Then the official `anthropic` client
through the service (whole, streamed, tool use, a tool loop), errors in Anthropic's shape,
`anthropic-beta` as the body's list, CountTokens, and the counting path."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from anthropic import AsyncAnthropic
from botocore.eventstream import EventStreamBuffer

from tests.broker.ingress.setup import BEDROCK_CLAUDE, TIMEOUT_S, gateway
from tests.broker.ingress.test_messages_native import BODY, post, relayed_events, without_ids
from tests.broker.providers_setup import no_ambient_aws  # noqa: F401 (autouse fixture)
from tests.claude_sdk import HELLO, TOOLS, counted_for_one, error_bodies, tool_loop

GROUP = "bedrock-claude"
MODEL_ID = BEDROCK_CLAUDE.base_model
VERSION = {"anthropic_version": "bedrock-2023-05-31"}
# The fake Bedrock takes a Bedrock API key as well as SigV4; the direct calls use one.
BEARER = {"Authorization": "Bearer br-key"}


def as_invoked(body: dict[str, Any]) -> dict[str, Any]:
    """A client's Messages body as InvokeModel takes it."""
    kept = {k: v for k, v in body.items() if k not in ("model", "stream")}
    return {**kept, **VERSION}


async def direct(session: aiohttp.ClientSession, fake: Any, body: Any, *, stream: bool) -> bytes:
    """What the fake sends for `body` asked of it directly (InvokeModel's own body)."""
    action = "invoke-with-response-stream" if stream else "invoke"
    url = f"{fake.base_url}/model/{MODEL_ID}/{action}"
    async with session.post(url, json=body, headers=BEARER) as reply:
        assert reply.status == 200, await reply.text()
        return await reply.read()


def as_sse(frames: bytes) -> bytes:
    """Each chunk frame's Anthropic event, framed as Anthropic frames it."""
    buffer = EventStreamBuffer()
    buffer.add_data(frames)
    events = []
    for message in buffer:
        data = base64.b64decode(orjson.loads(message.payload)["bytes"])
        events.append(b"event: %s\ndata: %s\n\n" % (orjson.loads(data)["type"].encode(), data))
    return b"".join(events)


async def test_whole_message_passes_through_byte_for_byte(fake, namespace):
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            status, relayed = await post(session, url, {**BODY, "model": GROUP})
            assert status == 200, relayed
            (received,) = fake.state.requests
            assert received.path == f"/model/{MODEL_ID}/invoke"
            assert received.json == as_invoked(BODY)
            assert received.headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")
            sent = await direct(session, fake, as_invoked(BODY), stream=False)
    assert without_ids(relayed) == without_ids(sent)
    assert orjson.loads(relayed)["model"] == "claude-3-5-sonnet-20241022"  # Bedrock's own


async def test_stream_events_pass_through_byte_for_byte(fake, namespace):
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            body = {**BODY, "model": GROUP, "stream": True}
            status, relayed = await post(session, url, body)
            assert status == 200, relayed
            (received,) = fake.state.requests
            assert received.path == f"/model/{MODEL_ID}/invoke-with-response-stream"
            assert received.json == as_invoked(BODY)
            frames = await direct(session, fake, as_invoked(BODY), stream=True)
    sent = as_sse(frames)
    # Bedrock's own addition to message_stop arrives too: nothing was re-encoded.
    assert b'"amazon-bedrock-invocationMetrics"' in sent
    assert without_ids(relayed_events(relayed)) == without_ids(sent)


async def test_anthropic_beta_becomes_the_bodys_list(fake, namespace):
    betas = "interleaved-thinking-2025-05-14, context-1m-2025-08-07"
    hello = {"model": GROUP, "max_tokens": 64, "messages": HELLO}
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            status, reply = await post(session, url, hello, headers={"anthropic-beta": betas})
            assert status == 200, reply
            (received,) = fake.state.requests
            # A Claude deployment pinned to Converse cannot take betas: refused by name.
            converse = {**hello, "model": "bedrock"}
            status, refused = await post(session, url, converse, headers={"anthropic-beta": betas})
            assert status == 400 and b"anthropic-beta" in refused
    assert received.json["anthropic_beta"] == [
        "interleaved-thinking-2025-05-14",
        "context-1m-2025-08-07",
    ]
    assert "anthropic-beta" not in received.headers


@contextlib.asynccontextmanager
async def client(fake: Any, namespace: str) -> AsyncIterator[Any]:
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with AsyncAnthropic(
            base_url=url, api_key="sk-switchboard", max_retries=0, timeout=TIMEOUT_S
        ) as sdk:
            yield sdk


async def test_the_anthropic_sdk_whole_streamed_and_tools(fake, namespace):
    reply_text = f"This is a fake reply from {MODEL_ID}."
    async with client(fake, namespace) as sdk:
        message = await sdk.messages.create(model=GROUP, max_tokens=256, messages=HELLO)
        assert message.content[0].text == reply_text and message.stop_reason == "end_turn"
        async with sdk.messages.stream(model=GROUP, max_tokens=256, messages=HELLO) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        assert "".join(texts) == reply_text
        assert final.usage.output_tokens == message.usage.output_tokens
        tools = await sdk.messages.create(
            model=GROUP + "-tools", max_tokens=256, messages=HELLO, tools=TOOLS
        )
        uses = [b for b in tools.content if b.type == "tool_use"]
        assert tools.stop_reason == "tool_use" and len(uses) == 2


async def test_a_claude_code_like_tool_loop(fake, namespace):
    """assistant tool_use -> user tool_result -> final text, streamed."""
    async with client(fake, namespace) as sdk:
        answer, results = await tool_loop(sdk, tools_model=GROUP + "-tools", model=GROUP)
    assert answer.stop_reason == "end_turn" and answer.content[-1].type == "text"
    # The tool results reached Bedrock as the client wrote them.
    sent = fake.state.requests[-1].json["messages"]
    assert sent[-1]["content"] == results


async def test_errors_come_in_anthropics_shape(fake, namespace):
    async with client(fake, namespace) as sdk:
        error, broken = await error_bodies(sdk, GROUP)
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
        assert broken["type"] == "error" and broken["error"]["type"] == "api_error"


async def test_count_tokens_asks_bedrock(fake, namespace):
    body = {"model": GROUP, "max_tokens": 64, "messages": HELLO, "system": "Be brief."}
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with aiohttp.ClientSession() as session:
            fake.state.clear()
            async with session.post(url + "/v1/messages/count_tokens", json=body) as reply:
                assert reply.status == 200, await reply.text()
                assert reply.headers["x-switchboard-token-count"] == "provider"
                counted = await reply.json()
    (received,) = fake.state.requests
    assert received.path == f"/model/{MODEL_ID}/count-tokens"
    inner = base64.b64decode(received.json["input"]["invokeModel"]["body"])
    assert orjson.loads(inner) == as_invoked(body)
    assert counted["input_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_usage_and_cost_are_counted_from_bedrocks_reply(fake, namespace, stream: bool):
    """The counting path is the native Anthropic one: the usage Bedrock reported is what the
    group's metrics add, priced."""
    async with client(fake, namespace) as sdk:
        usage, (prompt, completion, cost) = await counted_for_one(sdk, GROUP, stream=stream)
    assert prompt == usage.input_tokens and completion == usage.output_tokens
    assert cost > 0
