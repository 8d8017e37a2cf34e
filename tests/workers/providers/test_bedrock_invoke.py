"""Claude on Bedrock in Anthropic's own API (workers/providers/bedrock/invoke.py): which
deployments take it, the InvokeModel body, the chunk frames read back into Anthropic's SSE
events whatever the network splits, Bedrock's failures, and the adapter's URLs and signing
against the fake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from workers.deployment import Deployment
from workers.errors import ProviderError, SwitchboardError
from workers.http import HttpClient
from workers.providers.base import ChatCall, NativeBatch, NativeRequest
from workers.providers.bedrock import BedrockAdapter
from workers.providers.bedrock.invoke import (
    ChunkReader,
    invoke_body,
    model_path,
    split_route,
    takes_messages,
)
from workers.providers.bedrock.signing import credentials_for
from workers.testing.anthropic import messages_reply
from workers.testing.anthropic_reply import decode_request
from workers.testing.anthropic_wire import Ids, render_stream
from workers.testing.bedrock_claude import chunk_frames, event_json
from workers.testing.bedrock_frames import exception_frame
from workers.testing.scenario import parse_scenario
from workers.testing.server import FakeUpstream
from workers.wire import chat_request_from_dict

MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
AWS: dict[str, Any] = {
    "aws_access_key_id": "AKIDEXAMPLE",
    "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    "aws_region_name": "us-east-1",
}
BODY: dict[str, Any] = {
    "model": "my-group",
    "max_tokens": 64,
    "stream": True,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "Say hello"}],
}


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    credentials_for.cache_clear()
    yield
    credentials_for.cache_clear()


def bedrock(model: str, **fields: Any) -> Deployment:
    return Deployment(provider="bedrock", model=model, **fields)


def test_litellms_route_prefixes_say_which_api():
    assert split_route("invoke/" + MODEL_ID) == ("invoke", MODEL_ID)
    assert split_route("converse/" + MODEL_ID) == ("converse", MODEL_ID)
    assert split_route(MODEL_ID) == (None, MODEL_ID)
    assert split_route("arn:aws:bedrock:us-east-1:1:x/y") == (
        None,
        "arn:aws:bedrock:us-east-1:1:x/y",
    )
    assert takes_messages(bedrock(MODEL_ID))
    assert takes_messages(bedrock("anthropic.claude-3-5-haiku-20241022-v1:0"))
    assert takes_messages(bedrock("invoke/arn:aws:bedrock:us-east-1:1:application-profile/p"))
    # An ARN says nothing of its model; base_model does.
    arn = "arn:aws:bedrock:us-east-1:1:application-inference-profile/abc"
    assert not takes_messages(bedrock(arn))
    assert takes_messages(bedrock(arn, base_model="anthropic.claude-sonnet-4-5"))
    assert not takes_messages(bedrock("converse/" + MODEL_ID))
    assert not takes_messages(bedrock("amazon.nova-pro-v1:0"))
    assert not takes_messages(Deployment(provider="anthropic", model="claude-sonnet-4-5"))
    assert model_path("invoke/" + MODEL_ID) == "model/" + MODEL_ID.replace(":", "%3A")


def test_the_invoke_body_is_the_clients_with_bedrocks_version_and_betas():
    beta = {"anthropic-beta": "interleaved-thinking-2025-05-14, context-1m-2025-08-07"}
    native = NativeRequest(provider="anthropic", body=BODY, headers=beta)
    body = invoke_body(native, {"temperature": 0.5, "max_tokens": 9})
    assert body == {
        "temperature": 0.5,  # a deployment default under the client's fields
        "max_tokens": 64,
        "system": BODY["system"],
        "messages": BODY["messages"],
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"],
    }
    assert "anthropic_beta" not in invoke_body(NativeRequest(provider="anthropic", body=BODY), {})


def fake_stream(*, tools: int = 0) -> tuple[list[bytes], list[bytes]]:
    """The fake's Anthropic events for BODY, and the chunk frames it sends them in."""
    directives = f"~tools={tools}" if tools else ""
    raw = invoke_body(NativeRequest(provider="anthropic", body=BODY), {})
    native = decode_request(orjson.dumps(raw))
    reply = messages_reply(parse_scenario(MODEL_ID + directives), native, b"", None)
    events = [event for event, _ in render_stream(reply, model="claude", ids=Ids(7))]
    return events, chunk_frames(events, {"inputTokenCount": 1, "outputTokenCount": 2})


@pytest.mark.parametrize("piece", [1, 7, 64, 1 << 20], ids=["byte", "7", "64", "whole"])
@pytest.mark.parametrize("tools", [0, 2], ids=["text", "tools"])
def test_chunks_become_the_anthropic_events_they_carry(piece: int, tools: int):
    events, frames = fake_stream(tools=tools)
    wire = b"".join(frames)
    reader = ChunkReader("m")
    chunks, native = [], []
    for start in range(0, len(wire), piece):
        batch, relayed = reader.feed(wire[start : start + piece])
        chunks += batch
        native += relayed
    chunks += reader.finish()
    expected = [e.removesuffix(b"\n\n") for e in events[:-1]]
    assert native[:-1] == expected  # every event but message_stop byte for byte
    assert native[-1].startswith(b'event: message_stop\ndata: {"type":"message_stop",')
    assert b'"amazon-bedrock-invocationMetrics"' in native[-1]
    assert reader.done
    usage = [c.usage for c in chunks if c.usage is not None and not c.choices]
    assert len(usage) == 1 and usage[0] is not None and usage[0].completion_tokens > 0
    calls = [t for c in chunks for ch in c.choices for t in ch.delta.tool_calls or ()]
    assert len({t.index for t in calls}) == tools
    assert event_json(events[0]).startswith(b'{"type":"message_start"')


def test_an_exception_frame_mid_stream_is_bedrocks_error():
    _, frames = fake_stream()
    throttled = exception_frame("throttlingException", {"message": "Too many tokens"})
    reader = ChunkReader("m")
    reader.feed(b"".join(frames[:3]))
    # The events before the exception in the same read still go out; the error follows.
    _, relayed = reader.feed(frames[3] + throttled + frames[4])
    assert len(relayed) == 1 and relayed[0].startswith(b"event: content_block_delta")
    failure = reader.failure
    assert isinstance(failure, SwitchboardError) and failure.status == 429
    assert "ThrottlingException: Too many tokens" in str(failure)


def test_a_corrupt_or_cut_stream_is_a_provider_error():
    _, frames = fake_stream()
    corrupt = bytearray(frames[0])
    corrupt[-6] ^= 0xFF
    with pytest.raises(ProviderError, match="corrupt event stream"):
        ChunkReader("m").feed(bytes(corrupt))
    reader = ChunkReader("m")
    reader.feed(frames[0] + frames[1][:10])
    with pytest.raises(ProviderError, match="middle of a frame"):
        reader.finish()


def call(native: NativeRequest | None) -> ChatCall:
    chat = {"model": "g", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 64}
    return ChatCall(request=chat_request_from_dict(chat), body=chat, native=native)


async def test_the_adapter_invokes_claude_and_converses_otherwise(fake: FakeUpstream):
    native = NativeRequest(provider="anthropic", body={**BODY, "stream": False})
    async with HttpClient() as http:
        invoking = BedrockAdapter(bedrock(MODEL_ID, api_base=fake.base_url, options=AWS), http)
        completion = await invoking.chat(call(native))
        assert fake.requests[-1].path == f"/model/{MODEL_ID}/invoke"
        # Signed over the encoded path (the fake recomputes the signature for this key pair).
        assert fake.requests[-1].headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")
        assert completion.native_body.startswith(b'{"model":')  # type: ignore[attr-defined]
        assert completion.usage is not None and completion.usage.prompt_tokens > 0
        async with asyncio.timeout(10):
            batches = [b async for b in invoking.stream(call(native))]
        assert fake.requests[-1].path == f"/model/{MODEL_ID}/invoke-with-response-stream"
        assert batches and all(isinstance(b, NativeBatch) for b in batches)
        # A chat request (no native body) and a converse/ deployment go through Converse.
        await invoking.chat(call(None))
        assert fake.requests[-1].path == f"/model/{MODEL_ID}/converse"
        pinned = bedrock("converse/" + MODEL_ID, api_base=fake.base_url, options=AWS)
        await BedrockAdapter(pinned, http).chat(call(native))
        assert fake.requests[-1].path == f"/model/{MODEL_ID}/converse"
