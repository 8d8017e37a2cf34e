"""The Bedrock Converse adapter, both ways through the in-process SDK against the fake Bedrock
(whose SigV4 check recomputes signatures for the AWS example key pair), plus its event-stream
decoder against the shared wire examples."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import sys
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from botocore.eventstream import EventStreamBuffer

from tests import wire_examples
from workers.deployment import Deployment
from workers.errors import (
    AuthenticationFailed,
    ContentPolicyViolation,
    ContextWindowExceeded,
    InternalError,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    ProviderError,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    ServiceUnavailable,
    SwitchboardError,
    UnsupportedParams,
)
from workers.http import HttpClient
from workers.providers.bedrock import BedrockAdapter
from workers.providers.bedrock.eventstream import EventStreamDecoder, FrameError
from workers.providers.bedrock.request import REFUSED_PARAMS
from workers.providers.bedrock.signing import credentials_for
from workers.sdk import calls as sdk
from workers.sdk.assemble import stream_chunk_builder
from workers.sdk.stream import ChatStream
from workers.testing.embedding import embedding_base64, embedding_vector, input_key
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion, ChatCompletionChunk, EmbeddingResponse

DOCS = Path(__file__).resolve().parents[3] / "docs" / "providers" / "bedrock.md"
MODEL_ID = "anthropic.claude-3-5-sonnet-20241022-v2:0"
MODEL = f"bedrock/{MODEL_ID}"
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS: dict[str, Any] = {
    "aws_access_key_id": KEY_ID,
    "aws_secret_access_key": SECRET,
    "aws_region_name": "us-east-1",
}
HELLO = [{"role": "user", "content": "Say hello"}]
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """botocore reads the environment and ~/.aws; tests use only what they pass."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_BEARER_TOKEN_BEDROCK",
        "AWS_BEDROCK_RUNTIME_ENDPOINT",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_STS",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    credentials_for.cache_clear()  # a credential source remembers its chain's environment
    yield
    credentials_for.cache_clear()


async def complete(fake: FakeUpstream, model: str = MODEL, messages: Any = HELLO, **kwargs: Any):
    kwargs = {**AWS, **kwargs}
    response = await sdk.acompletion(model, messages, api_base=fake.base_url, **kwargs)
    assert isinstance(response, ChatCompletion)
    return response


async def stream(
    fake: FakeUpstream, model: str = MODEL, messages: Any = HELLO, **kwargs: Any
) -> list[ChatCompletionChunk]:
    kwargs = {"stream_options": {"include_usage": True}, **AWS, **kwargs}
    async with asyncio.timeout(10):
        chunks = await sdk.acompletion(
            model, messages, api_base=fake.base_url, stream=True, **kwargs
        )
        assert isinstance(chunks, ChatStream)
        return [chunk async for chunk in chunks]


def sent(fake: FakeUpstream) -> dict[str, Any]:
    """The native request body the fake received last."""
    body: dict[str, Any] = fake.requests[-1].json
    return body


def example_bytes(name: str) -> bytes:
    return wire_examples.example_bytes("bedrock", name)


# --------------------------------------------------------------------------- event-stream decoder

STREAM_EXAMPLES = (
    "converse_stream_text.bin",
    "converse_stream_tool_use.bin",
    "converse_stream_error.bin",
)


def botocore_frames(raw: bytes) -> list[tuple[dict[str, Any], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return [(message.headers, message.payload) for message in buffer]


@pytest.mark.parametrize("name", STREAM_EXAMPLES)
def test_decoder_reads_each_example_as_botocore_does(name: str) -> None:
    raw = example_bytes(name)
    frames = EventStreamDecoder().feed(raw)
    assert [(f.headers, f.payload) for f in frames] == botocore_frames(raw)


@pytest.mark.parametrize("name", STREAM_EXAMPLES)
def test_decoder_gives_the_same_frames_however_the_bytes_are_split(name: str) -> None:
    raw = example_bytes(name)
    whole = [(f.headers, f.payload) for f in EventStreamDecoder().feed(raw)]
    for cut in range(len(raw) + 1):
        decoder = EventStreamDecoder()
        frames = decoder.feed(raw[:cut]) + decoder.feed(raw[cut:])
        assert [(f.headers, f.payload) for f in frames] == whole, cut
        assert decoder.pending_bytes == 0
    decoder = EventStreamDecoder()
    one_by_one = [f for i in range(len(raw)) for f in decoder.feed(raw[i : i + 1])]
    assert [(f.headers, f.payload) for f in one_by_one] == whole


@pytest.mark.parametrize("position", [2, 9, 40, -10, -1])
def test_decoder_rejects_a_corrupted_byte(position: int) -> None:
    raw = bytearray(example_bytes("converse_stream_text.bin"))
    raw[position] ^= 0x01
    with pytest.raises(FrameError, match="CRC|length"):
        EventStreamDecoder().feed(bytes(raw))


def test_decoder_reads_every_header_value_type() -> None:
    marker = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = b"".join(
        [
            b"\x01t\x00",
            b"\x01f\x01",
            b"\x01b\x02\xff",
            b"\x01s\x03" + struct.pack(">h", -2),
            b"\x01i\x04" + struct.pack(">i", 70000),
            b"\x01l\x05" + struct.pack(">q", 2**40),
            b"\x01y\x06\x00\x02\x00\x01",
            b"\x01z\x07\x00\x02ok",
            b"\x01d\x08" + struct.pack(">q", 1_700_000_000_000),
            b"\x01u\x09" + marker.bytes,
        ]
    )
    prelude = struct.pack(">II", 16 + len(headers) + 2, len(headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + headers + b"{}"
    raw = head + struct.pack(">I", zlib.crc32(head))
    (frame,) = EventStreamDecoder().feed(raw)
    assert frame.headers == {
        "t": True,
        "f": False,
        "b": -1,
        "s": -2,
        "i": 70000,
        "l": 2**40,
        "y": b"\x00\x01",
        "z": "ok",
        "d": 1_700_000_000_000,
        "u": str(marker),
    }
    assert frame.payload == b"{}"
    assert botocore_frames(raw)[0][0]["z"] == "ok"


# --------------------------------------------------------------------------- plain answers


async def test_text_answer_with_usage_cost_and_the_native_request(fake: FakeUpstream) -> None:
    response = await complete(
        fake,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "Capital of France?"},
        ],
        max_tokens=256,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
    )
    assert response.choices[0].message.content == f"This is a fake reply from {MODEL_ID}."
    assert response.choices[0].finish_reason == "stop"
    assert response.model == MODEL_ID
    assert response.id.startswith("chatcmpl-")
    usage = response.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert response.hidden_params["cost_known"] is True and response.hidden_params["cost_usd"] > 0
    assert sent(fake) == {
        "messages": [{"role": "user", "content": [{"text": "Capital of France?"}]}],
        "system": [{"text": "Be brief."}, {"text": "Answer in English."}],
        "inferenceConfig": {
            "maxTokens": 256,
            "temperature": 0.2,
            "topP": 0.9,
            "stopSequences": ["END"],
        },
    }
    assert fake.requests[-1].path == f"/model/{MODEL_ID}/converse"


async def test_requests_are_sigv4_signed_for_the_bedrock_scope(fake: FakeUpstream) -> None:
    # The fake recomputes the signature for the example key pair from the raw path, so a
    # pass proves the signed canonical URI is the encoded one on the wire (`%3A`).
    await complete(fake)
    headers = fake.requests[-1].headers
    assert headers["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{headers['X-Amz-Date'][:8]}/us-east-1/bedrock/"
        "aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
    )
    with pytest.raises(AuthenticationFailed, match="InvalidSignatureException"):
        await complete(fake, aws_secret_access_key="not-the-secret")


async def test_session_token_is_sent_and_signed(fake: FakeUpstream) -> None:
    await complete(fake, aws_session_token="session-token-1")
    headers = fake.requests[-1].headers
    assert headers["X-Amz-Security-Token"] == "session-token-1"
    assert "x-amz-security-token" in headers["Authorization"]


async def test_model_ids_are_url_encoded_like_botocore(fake: FakeUpstream) -> None:
    arn = (
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
        "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
    )
    adapter = BedrockAdapter(
        Deployment(provider="bedrock", model=arn, api_base=fake.base_url, options=AWS),
        HttpClient(),
    )
    assert adapter.converse_url == (
        f"{fake.base_url}/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A"
        "inference-profile%2Fus.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
    )
    response = await complete(fake, f"bedrock/{arn}")
    assert response.choices[0].message.content == f"This is a fake reply from {arn}."
    assert fake.requests[-1].path == f"/model/{arn}/converse"


async def test_bedrock_api_key_is_a_bearer_token_instead_of_sigv4(fake: FakeUpstream) -> None:
    response = await sdk.acompletion(
        MODEL, HELLO, api_base=fake.base_url, api_key="bedrock-api-key-1"
    )
    assert isinstance(response, ChatCompletion)
    headers = fake.requests[-1].headers
    assert headers["Authorization"] == "Bearer bedrock-api-key-1"
    assert "X-Amz-Date" not in headers
    await sdk.acompletion(
        MODEL,
        HELLO,
        api_base=fake.base_url,
        environ={"AWS_BEARER_TOKEN_BEDROCK": "bedrock-api-key-2"},
    )
    assert fake.requests[-1].headers["Authorization"] == "Bearer bedrock-api-key-2"


# --------------------------------------------------------------------------- credentials


async def test_credentials_come_from_the_environment_chain(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    await sdk.acompletion(MODEL, HELLO, api_base=fake.base_url)
    assert "/eu-west-1/bedrock/aws4_request" in fake.requests[-1].headers["Authorization"]


async def test_credentials_and_region_come_from_a_named_profile(
    fake: FakeUpstream, tmp_path: Path
) -> None:
    (tmp_path / "credentials").write_text(
        f"[dev]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"
    )
    (tmp_path / "config").write_text("[profile dev]\nregion = ap-south-1\n")
    await sdk.acompletion(MODEL, HELLO, api_base=fake.base_url, aws_profile_name="dev")
    assert f"Credential={KEY_ID}/" in fake.requests[-1].headers["Authorization"]
    assert "/ap-south-1/bedrock/" in fake.requests[-1].headers["Authorization"]


async def test_role_is_assumed_and_its_credentials_renewed_before_expiry(
    fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake.base_url)
    role = {
        "aws_role_name": "arn:aws:iam::123456789012:role/short-lived",
        "aws_session_name": "switchboard-test",
    }
    for _ in range(2):
        await complete(fake, **role)
    sts = [r for r in fake.requests if r.path == "/"]
    bedrock = [r for r in fake.requests if r.path != "/"]
    # The fake STS issues 5-minute credentials, inside botocore's refresh window: each use
    # renews them (in a worker thread), with the explicit keys as the source identity.
    assert len(sts) == 2
    assert all(f"Credential={KEY_ID}/" in r.headers["Authorization"] for r in sts)
    assert "RoleSessionName=switchboard-test" in sts[0].body.decode()
    keys = [r.headers["Authorization"].split("Credential=")[1].split("/")[0] for r in bedrock]
    assert all(key.startswith("ASIAFAKE") for key in keys) and keys[0] != keys[1]
    assert all(r.headers["X-Amz-Security-Token"].startswith("fake-session-token") for r in bedrock)


async def test_missing_credentials_and_region_are_clear_errors(fake: FakeUpstream) -> None:
    with pytest.raises(AuthenticationFailed, match="no AWS credentials"):
        await sdk.acompletion(MODEL, HELLO, api_base=fake.base_url, aws_region_name="us-east-1")
    with pytest.raises(AuthenticationFailed, match="must be given together"):
        await sdk.acompletion(
            MODEL,
            HELLO,
            api_base=fake.base_url,
            aws_region_name="us-east-1",
            aws_access_key_id=KEY_ID,
        )
    with pytest.raises(AuthenticationFailed, match="could not get AWS credentials"):
        await sdk.acompletion(
            MODEL,
            HELLO,
            api_base=fake.base_url,
            aws_region_name="us-east-1",
            aws_profile_name="nope",
        )
    assert fake.request_count == 0
    with pytest.raises(InvalidRequest, match="needs a region") as caught:
        await sdk.acompletion(
            MODEL,
            HELLO,
            api_base=fake.base_url,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )
    assert caught.value.param == "aws_region_name"


def test_region_and_endpoint_come_from_options() -> None:
    http = HttpClient()
    by_region = BedrockAdapter(
        Deployment(
            provider="bedrock", model=MODEL_ID, options={**AWS, "aws_region_name": "eu-central-1"}
        ),
        http,
    )
    assert by_region.converse_url.startswith("https://bedrock-runtime.eu-central-1.amazonaws.com/")
    endpoint = "https://bedrock-runtime.us-west-2.amazonaws.com"
    options = {k: v for k, v in AWS.items() if k != "aws_region_name"}
    by_endpoint = BedrockAdapter(
        Deployment(
            provider="bedrock",
            model=MODEL_ID,
            options={**options, "aws_bedrock_runtime_endpoint": endpoint},
        ),
        http,
    )
    assert (
        by_endpoint.stream_url == f"{endpoint}/model/{MODEL_ID.replace(':', '%3A')}/converse-stream"
    )
    assert by_endpoint.signer._region == "us-west-2"  # type: ignore[attr-defined]


def test_without_botocore_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "botocore", None)
    with pytest.raises(InternalError, match=r"switchboard-gateway\[bedrock\].*-e .\.\[bedrock\]"):
        BedrockAdapter(Deployment(provider="bedrock", model=MODEL_ID, options=AWS), HttpClient())


# --------------------------------------------------------------------------- conversations


async def test_multi_turn_tool_results_go_back_in_one_user_turn(fake: FakeUpstream) -> None:
    messages = [
        {"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "tooluse_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "tooluse_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "tooluse_1", "content": '{"celsius": 21}'},
        {"role": "tool", "tool_call_id": "tooluse_2", "content": "sunny, 25C"},
        {"role": "user", "content": "Which is warmer?"},
    ]
    response = await complete(fake, messages=messages, tools=[WEATHER])
    assert response.choices[0].finish_reason == "stop"
    body = sent(fake)
    assert body["system"] == [{"text": "Use tools."}]
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
                {
                    "toolUse": {
                        "toolUseId": "tooluse_2",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    }
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"json": {"celsius": 21}}]}},
                {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "sunny, 25C"}]}},
                {"text": "Which is warmer?"},
            ],
        },
    ]
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "inputSchema": {"json": WEATHER["function"]["parameters"]},
                }
            }
        ]
    }


async def test_consecutive_user_messages_merge_into_one_turn(fake: FakeUpstream) -> None:
    await complete(
        fake,
        messages=[{"role": "user", "content": "One."}, {"role": "user", "content": "Two."}],
    )
    assert sent(fake)["messages"] == [
        {"role": "user", "content": [{"text": "One."}, {"text": "Two."}]}
    ]


async def test_tool_calls_come_back_whole_and_streamed(fake: FakeUpstream) -> None:
    response = await complete(fake, f"{MODEL}~tools=2", tools=[WEATHER], tool_choice="required")
    message = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert message.content is None and message.tool_calls is not None
    assert [json.loads(c.function.arguments)["call"] for c in message.tool_calls] == [0, 1]
    assert all(
        c.id.startswith("tooluse_") and c.function.name == "get_weather" for c in message.tool_calls
    )
    assert sent(fake)["toolConfig"]["toolChoice"] == {"any": {}}

    chunks = await stream(fake, f"{MODEL}~tools=2", tools=[WEATHER])
    firsts = [
        call
        for chunk in chunks
        for choice in chunk.choices
        for call in choice.delta.tool_calls or ()
        if call.id is not None
    ]
    assert [(c.index, c.type, c.function and c.function.arguments) for c in firsts] == [
        (0, "function", ""),
        (1, "function", ""),
    ]
    built = stream_chunk_builder(chunks)
    calls = built.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments)["call"] for c in calls] == [0, 1]
    assert built.choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert all(chunk.usage is None for chunk in chunks[:-1])


@pytest.mark.parametrize(
    ("tool_choice", "native"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"tool": {"name": "get_weather"}},
        ),
    ],
)
async def test_tool_choice_maps_to_converse(
    fake: FakeUpstream, tool_choice: Any, native: Any
) -> None:
    await complete(fake, tools=[WEATHER], tool_choice=tool_choice)
    assert sent(fake)["toolConfig"]["toolChoice"] == native


async def test_tool_choice_none_leaves_the_tools_out_unless_history_needs_them(
    fake: FakeUpstream,
) -> None:
    await complete(fake, tools=[WEATHER], tool_choice="none")
    assert "toolConfig" not in sent(fake)
    history = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
    ]
    with pytest.raises(UnsupportedParams) as caught:
        await complete(fake, messages=history, tools=[WEATHER], tool_choice="none")
    assert caught.value.param == "tool_choice"
    await complete(fake, messages=history, tools=[WEATHER], tool_choice="none", drop_params=True)
    assert sent(fake)["toolConfig"] == {
        "tools": [{"toolSpec": sent(fake)["toolConfig"]["tools"][0]["toolSpec"]}]
    }
    with pytest.raises(InvalidRequest, match="send the tools again") as missing:
        await complete(fake, messages=history)
    assert missing.value.param == "tools"


# --------------------------------------------------------------------------- media


@pytest.fixture
async def image_server() -> AsyncIterator[str]:
    async def png(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    async def untyped(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="application/octet-stream")

    async def bitmap(request: web.Request) -> web.Response:
        return web.Response(body=b"BM" + b"\x00" * 30, content_type="image/bmp")

    app = web.Application()
    app.router.add_get("/cat.png", png)
    app.router.add_get("/cat", untyped)
    app.router.add_get("/cat.bmp", bitmap)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


# The image server listens on loopback, which only an operator's allow list opens.
LOOPBACK_MEDIA = {"allow_networks": ["127.0.0.1/32"]}


def image_message(url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


async def test_images_travel_as_bytes_from_data_and_http_urls(
    fake: FakeUpstream, image_server: str
) -> None:
    encoded = base64.b64encode(PNG).decode()
    expected = {"image": {"format": "png", "source": {"bytes": encoded}}}
    for url in (
        f"data:image/png;base64,{encoded}",
        f"{image_server}/cat.png",
        f"{image_server}/cat",
    ):
        await complete(fake, messages=image_message(url), media_fetch=LOOPBACK_MEDIA)
        assert sent(fake)["messages"][0]["content"] == [{"text": "What is this?"}, expected]


@pytest.mark.parametrize(
    ("path", "match"),
    [("/cat.bmp", "unsupported content type image/bmp"), ("/missing.png", "HTTP 404")],
)
async def test_unusable_images_are_refused_naming_the_part(
    fake: FakeUpstream, image_server: str, path: str, match: str
) -> None:
    messages = image_message(image_server + path)
    with pytest.raises(InvalidRequest) as caught:
        await complete(fake, messages=messages, media_fetch=LOOPBACK_MEDIA)
    param = "messages[0].content[1].image_url"
    assert caught.value.param == param
    assert caught.value.message == f"{param} could not be fetched: {match}"
    assert caught.value.code == "invalid_image_url"
    assert fake.request_count == 0


async def test_pdf_files_become_document_blocks(fake: FakeUpstream) -> None:
    pdf = base64.b64encode(b"%PDF-1.4 fake").decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Summarise."},
                {
                    "type": "file",
                    "file": {
                        "filename": "q3_report.v2.pdf",
                        "file_data": f"data:application/pdf;base64,{pdf}",
                    },
                },
            ],
        }
    ]
    await complete(fake, messages=messages)
    assert sent(fake)["messages"][0]["content"][1] == {
        "document": {"format": "pdf", "name": "q3 report v2", "source": {"bytes": pdf}}
    }


# --------------------------------------------------------------------------- thinking


async def test_reasoning_effort_enables_claude_thinking_and_returns_signed_blocks(
    fake: FakeUpstream,
) -> None:
    response = await complete(
        fake, f"{MODEL}~reasoning=8", reasoning_effort="low", base_model=MODEL_ID
    )
    body = sent(fake)
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 1024}
    }
    # The budget counts against maxTokens; room for the answer, capped by the model's limit.
    assert body["inferenceConfig"] == {"maxTokens": 1024 + 4096}
    message = response.choices[0].message
    assert message.reasoning_content and len(message.reasoning_content) == 8 * 4
    assert message.thinking_blocks == [
        {
            "type": "thinking",
            "thinking": message.reasoning_content,
            "signature": "EqoBCkgIARABGAIiQGx3Zm9vYmFy",
        }
    ]
    assert message.content == f"This is a fake reply from {MODEL_ID}."

    chunks = await stream(
        fake,
        f"{MODEL}~reasoning=8",
        thinking={"type": "enabled", "budget_tokens": 2000},
        max_tokens=3000,
    )
    assert sent(fake)["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 2000
    built = stream_chunk_builder(chunks)
    assert built.choices[0].message.reasoning_content == message.reasoning_content
    assert built.choices[0].message.thinking_blocks == message.thinking_blocks


async def test_thinking_blocks_go_back_unchanged_before_tool_calls(fake: FakeUpstream) -> None:
    redacted = base64.b64encode(b"opaque").decode()
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "I should call the tool.",
            "thinking_blocks": [
                {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": redacted},
            ],
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
    ]
    await complete(fake, messages=messages, tools=[WEATHER], reasoning_effort="medium")
    assert sent(fake)["messages"][1]["content"] == [
        {
            "reasoningContent": {
                "reasoningText": {"text": "I should call the tool.", "signature": "sig-1"}
            }
        },
        {"reasoningContent": {"redactedContent": redacted}},
        {"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}},
    ]


async def test_thinking_keeps_room_for_the_answer_and_needs_a_claude_model(
    fake: FakeUpstream,
) -> None:
    await complete(fake, reasoning_effort="medium", max_tokens=1000, base_model=MODEL_ID)
    assert sent(fake)["inferenceConfig"] == {"maxTokens": 4096 + 1000}
    # claude-3-5-sonnet's output limit (8192) is below a 16384 budget: no room to answer.
    with pytest.raises(InvalidRequest, match="no room above the thinking budget") as small:
        await complete(fake, reasoning_effort="high", base_model=MODEL_ID)
    assert small.value.param == "max_tokens"
    nova = "bedrock/amazon.nova-pro-v1:0"
    with pytest.raises(UnsupportedParams) as caught:
        await complete(fake, nova, reasoning_effort="low")
    assert caught.value.param == "reasoning_effort"
    await complete(fake, nova, reasoning_effort="low", drop_params=True)
    assert "additionalModelRequestFields" not in sent(fake)


# --------------------------------------------------------------------------- usage and caching


async def test_cached_usage_is_normalised_and_priced(fake: FakeUpstream) -> None:
    response = await complete(fake, f"{MODEL}~cached=64", base_model=MODEL_ID)
    usage = response.usage
    assert usage is not None
    assert usage.cached_tokens == 64 and usage.cache_write_tokens == 0
    assert usage.prompt_tokens >= 64
    expected = (usage.prompt_tokens - 64) * 3e-6 + 64 * 3e-7 + usage.completion_tokens * 1.5e-5
    assert response.hidden_params["cost_usd"] == pytest.approx(expected)

    chunks = await stream(fake, f"{MODEL}~cached=64", base_model=MODEL_ID)
    assert chunks[-1].usage == usage


async def test_cache_control_becomes_cache_points_and_reports_cache_writes(
    fake: FakeUpstream,
) -> None:
    ephemeral = {"type": "ephemeral"}
    messages = [
        {"role": "system", "content": "A long shared instruction.", "cache_control": ephemeral},
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "A long document.",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                },
                {"type": "text", "text": "Question?"},
            ],
        },
    ]
    response = await complete(
        fake, messages=messages, tools=[{**WEATHER, "cache_control": ephemeral}]
    )
    body = sent(fake)
    assert body["system"] == [
        {"text": "A long shared instruction."},
        {"cachePoint": {"type": "default"}},
    ]
    assert body["messages"][0]["content"] == [
        {"text": "A long document."},
        {"cachePoint": {"type": "default", "ttl": "1h"}},
        {"text": "Question?"},
    ]
    assert body["toolConfig"]["tools"][1] == {"cachePoint": {"type": "default"}}
    usage = response.usage
    assert usage is not None and usage.cache_write_tokens > 0 and usage.cached_tokens == 0
    assert usage.prompt_tokens == usage.total_tokens - usage.completion_tokens


# --------------------------------------------------------------------------- finish reasons

FINISH_REASONS = [
    ("end_turn", "stop"),
    ("stop_sequence", "stop"),
    ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"),
    ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"),
    ("content_filtered", "content_filter"),
]


@pytest.mark.parametrize(("stop_reason", "finish_reason"), FINISH_REASONS)
async def test_each_stop_reason_maps_to_a_finish_reason(
    fake: FakeUpstream, stop_reason: str, finish_reason: str
) -> None:
    model = f"{MODEL}~stop_reason={stop_reason}"
    response = await complete(fake, model)
    assert response.choices[0].finish_reason == finish_reason
    chunks = await stream(fake, model)
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == [finish_reason]


@pytest.mark.parametrize("stop_reason", ["malformed_model_output", "malformed_tool_use"])
async def test_malformed_output_is_a_retryable_provider_error(
    fake: FakeUpstream, stop_reason: str
) -> None:
    model = f"{MODEL}~stop_reason={stop_reason}"
    with pytest.raises(ProviderError) as plain:
        await complete(fake, model)
    assert plain.value.code == stop_reason and plain.value.retryable
    with pytest.raises(ProviderError, match=stop_reason):
        await stream(fake, model)


# --------------------------------------------------------------------------- errors

HTTP_ERRORS = [
    ("status=400", InvalidRequest, 400),
    ("status=context_window", ContextWindowExceeded, 400),
    ("status=content_filter", ContentPolicyViolation, 400),
    ("error=ServiceQuotaExceededException", QuotaExceeded, 429),
    ("status=401", AuthenticationFailed, 401),
    ("error=UnrecognizedClientException", AuthenticationFailed, 401),
    ("error=ExpiredTokenException", AuthenticationFailed, 401),
    ("status=403", PermissionDenied, 403),
    ("status=404", ModelNotFound, 404),
    ("status=408", RequestTimeout, 408),
    ("status=424", ProviderError, 502),
    ("status=429", RateLimited, 429),
    ("error=ModelNotReadyException", ServiceUnavailable, 503),
    ("status=500", ProviderError, 500),
    ("status=503", ServiceUnavailable, 503),
]


@pytest.mark.parametrize(("directive", "error", "status"), HTTP_ERRORS)
async def test_http_errors_map_to_the_most_specific_class(
    fake: FakeUpstream, directive: str, error: type[SwitchboardError], status: int
) -> None:
    model = f"{MODEL}~{directive}"
    with pytest.raises(error) as plain:
        await complete(fake, model)
    assert type(plain.value) is error and plain.value.http_status == status
    assert plain.value.provider == "bedrock"
    with pytest.raises(error):
        await stream(fake, model)


async def test_throttling_carries_retry_after_when_sent(fake: FakeUpstream) -> None:
    with pytest.raises(RateLimited) as caught:
        await complete(fake, f"{MODEL}~status=429~retry_after=2")
    assert caught.value.retry_after_s == 2
    assert "Too many requests" in caught.value.message


STREAM_EXCEPTIONS = [
    ("throttlingException", RateLimited),
    ("modelStreamErrorException", ProviderError),
    ("internalServerException", ProviderError),
    ("serviceUnavailableException", ServiceUnavailable),
    ("validationException", ContextWindowExceeded),  # the fake's message: input too long
]


@pytest.mark.parametrize(("exception", "error"), STREAM_EXCEPTIONS)
async def test_exception_frames_mid_stream_raise_the_mapped_error(
    fake: FakeUpstream, exception: str, error: type[SwitchboardError]
) -> None:
    chunks: list[ChatCompletionChunk] = []
    with pytest.raises(error) as caught:
        async with asyncio.timeout(10):
            response = await sdk.acompletion(
                f"{MODEL}~stream_error_after=2~exception={exception}~chunk_delay=0.001",
                HELLO,
                api_base=fake.base_url,
                stream=True,
                **AWS,
            )
            assert isinstance(response, ChatStream)
            async for chunk in response:
                chunks.append(chunk)
    assert type(caught.value) is error
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks)


async def test_a_cut_connection_mid_stream_is_a_provider_error(fake: FakeUpstream) -> None:
    with pytest.raises(ProviderError):
        await stream(fake, f"{MODEL}~disconnect_after=2")


async def test_a_hanging_upstream_times_out(fake: FakeUpstream) -> None:
    async with asyncio.timeout(10):
        with pytest.raises(RequestTimeout):
            await complete(fake, f"{MODEL}~hang", timeout=0.5)
        await fake.wait_for_disconnects(1)


async def test_a_client_that_stops_reading_closes_the_upstream_stream(fake: FakeUpstream) -> None:
    async with asyncio.timeout(10):
        response = await sdk.acompletion(
            f"{MODEL}~chunks=50~chunk_delay=0.05", HELLO, api_base=fake.base_url, stream=True, **AWS
        )
        assert isinstance(response, ChatStream)
        await anext(response)
        await response.aclose()
        (gone,) = await fake.wait_for_disconnects(1)
    assert gone.was_streaming and gone.events_sent < 50


# --------------------------------------------------------------------------- parameters

REFUSED = [
    ("n", 2),
    ("seed", 7),
    ("user", "user-1"),
    ("safety_identifier", "user-1"),
    ("logit_bias", {"50256": -100}),
    ("logprobs", True),
    ("presence_penalty", 0.5),
    ("frequency_penalty", 0.5),
    ("parallel_tool_calls", False),
    ("temperature", 1.5),
    ("response_format", {"type": "json_object"}),
    ("service_tier", "scale"),
    ("store", True),
    ("modalities", ["text", "audio"]),
    ("audio", {"voice": "alloy", "format": "wav"}),
    ("prediction", {"type": "content", "content": "x"}),
    ("web_search_options", {}),
    ("verbosity", "low"),
    ("prompt_cache_key", "k"),
    ("functions", [{"name": "f", "parameters": {}}]),
    ("function_call", "auto"),
    ("thinking", {"type": "enabled", "budget_tokens": 2048}),
]


@pytest.mark.parametrize(("param", "value"), REFUSED)
async def test_parameters_converse_cannot_honor_are_refused_or_dropped(
    fake: FakeUpstream, param: str, value: Any
) -> None:
    model = "bedrock/amazon.nova-pro-v1:0"  # not Claude: `thinking` is refused too
    with pytest.raises(UnsupportedParams) as caught:
        await complete(fake, model, **{param: value})
    assert caught.value.param == param and caught.value.http_status == 400
    assert param in caught.value.message and "bedrock" in caught.value.message
    assert fake.request_count == 0
    response = await complete(fake, model, drop_params=True, **{param: value})
    assert response.choices[0].finish_reason == "stop"
    assert set(sent(fake)) == {"messages"}


def test_every_refused_parameter_is_tested_and_documented() -> None:
    assert {param for param, _ in REFUSED} | {"top_logprobs", "reasoning_effort"} == set(
        REFUSED_PARAMS
    )
    table = DOCS.read_text()
    for param in REFUSED_PARAMS:
        assert f"| `{param}` |" in table, param


async def test_top_k_and_native_request_fields_reach_additional_model_request_fields(
    fake: FakeUpstream,
) -> None:
    native = {"additionalModelRequestFields": {"anthropic_beta": ["context-1m-2025-08-07"]}}
    await complete(fake, extra_body={"top_k": 5, **native}, reasoning_effort="low")
    assert sent(fake)["additionalModelRequestFields"] == {
        "anthropic_beta": ["context-1m-2025-08-07"],
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    }
    with pytest.raises(UnsupportedParams) as top_k:
        await complete(fake, "bedrock/amazon.nova-pro-v1:0", extra_body={"top_k": 5})
    assert top_k.value.param == "top_k"


async def test_unknown_top_level_fields_and_unsendable_parts_are_refused(
    fake: FakeUpstream,
) -> None:
    with pytest.raises(UnsupportedParams) as unknown:
        await complete(fake, extra_body={"best_of": 5})
    assert unknown.value.param == "best_of"
    named = [{"role": "user", "content": "Hi", "name": "alice"}]
    with pytest.raises(UnsupportedParams) as name:
        await complete(fake, messages=named)
    assert name.value.param == "messages[0].name"
    audio = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Hi"},
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            ],
        }
    ]
    with pytest.raises(UnsupportedParams) as part:
        await complete(fake, messages=audio)
    assert part.value.param == "messages[0].content[1]"
    await complete(fake, messages=named, extra_body={"best_of": 5}, drop_params=True)
    assert sent(fake) == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}


async def test_parameters_converse_can_honor_are_translated(fake: FakeUpstream) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    await complete(
        fake,
        n=1,
        presence_penalty=0,
        frequency_penalty=0,
        logprobs=False,
        store=False,
        parallel_tool_calls=True,
        service_tier="priority",
        metadata={"team": "search"},
        max_completion_tokens=100,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    body = sent(fake)
    assert body["serviceTier"] == {"type": "priority"}
    assert body["requestMetadata"] == {"team": "search"}
    assert body["inferenceConfig"] == {"maxTokens": 100}
    text_format = body["outputConfig"]["textFormat"]
    assert text_format["type"] == "json_schema"
    assert text_format["structure"]["jsonSchema"]["name"] == "city"
    assert json.loads(text_format["structure"]["jsonSchema"]["schema"]) == schema


# --------------------------------------------------------------------------- embeddings

TITAN_V2 = "bedrock/amazon.titan-embed-text-v2:0"


async def embed(fake: FakeUpstream, model: str, input: Any, **kwargs: Any) -> EmbeddingResponse:
    return await sdk.aembedding(model, input, api_base=fake.base_url, **{**AWS, **kwargs})


async def test_titan_embeds_each_input_through_invoke_model(fake: FakeUpstream) -> None:
    response = await embed(fake, TITAN_V2, ["hello world", "good night"], dimensions=256)
    assert [item.index for item in response.data] == [0, 1]
    assert response.data[0].embedding == pytest.approx(
        list(embedding_vector(input_key("hello world"), 256))
    )
    assert response.usage.prompt_tokens == response.usage.total_tokens == 3 + 3
    assert response.model == "amazon.titan-embed-text-v2:0"
    bodies = sorted(r.json["inputText"] for r in fake.requests)
    assert bodies == ["good night", "hello world"]
    assert all(r.json["dimensions"] == 256 for r in fake.requests)
    assert fake.requests[0].path == "/model/amazon.titan-embed-text-v2:0/invoke"
    assert "/us-east-1/bedrock/aws4_request" in fake.requests[0].headers["Authorization"]


async def test_titan_base64_embeddings_are_little_endian_float32(fake: FakeUpstream) -> None:
    response = await embed(
        fake, "bedrock/amazon.titan-embed-text-v1", "hello", encoding_format="base64"
    )
    assert response.data[0].embedding == embedding_base64(input_key("hello"), 1536)


async def test_titan_refuses_what_it_cannot_honor(fake: FakeUpstream) -> None:
    with pytest.raises(UnsupportedParams) as fixed_size:
        await embed(fake, "bedrock/amazon.titan-embed-text-v1", "hi", dimensions=256)
    assert fixed_size.value.param == "dimensions"
    with pytest.raises(UnsupportedParams) as size:
        await embed(fake, TITAN_V2, "hi", dimensions=300)
    assert size.value.param == "dimensions"
    with pytest.raises(UnsupportedParams) as user:
        await embed(fake, TITAN_V2, "hi", user="u-1")
    assert user.value.param == "user"
    with pytest.raises(InvalidRequest, match="token-id arrays") as tokens:
        await embed(fake, TITAN_V2, [1, 2, 3])
    assert tokens.value.param == "input"
    assert fake.request_count == 0
    response = await embed(fake, TITAN_V2, "hi", dimensions=300, user="u-1", drop_params=True)
    assert len(response.data[0].embedding) == 1024
    assert fake.requests[-1].json == {"inputText": "hi"}


async def test_other_bedrock_embedding_models_are_refused(fake: FakeUpstream) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await embed(fake, "bedrock/cohere.embed-english-v3", "hi")
    assert caught.value.param == "model"


async def test_a_failed_embedding_call_fails_the_request(fake: FakeUpstream) -> None:
    with pytest.raises(RateLimited):
        await embed(fake, f"{TITAN_V2}~status=429", ["a", "b", "c"])
