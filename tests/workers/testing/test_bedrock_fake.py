"""The Bedrock fake, proven by botocore (boto3 `bedrock-runtime`) parsing what it sends, and by
comparing its bodies and frames with the shared wire examples."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError
from urllib3.exceptions import ProtocolError

from tests.wire_examples import example_path
from workers.testing import FakeUpstream, ThreadedFakeUpstream
from workers.testing.bedrock_errors import STOP_REASONS, parse_bedrock_scenario
from workers.testing.bedrock_frames import encode_frame, encode_headers
from workers.testing.bedrock_reply import Answer, decide, render_stream
from workers.testing.bedrock_request import read_request

from .conftest import example_json

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
KEY_ID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
MESSAGES = [{"role": "user", "content": [{"text": "Capital of France?"}]}]
TOOLS = {
    "tools": [
        {
            "toolSpec": {
                "name": "get_weather",
                "inputSchema": {"json": {"type": "object", "properties": {}}},
            }
        }
    ]
}
EXAMPLE_STREAMS = ("converse_stream_text", "converse_stream_tool_use", "converse_stream_error")


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """botocore reads the environment and ~/.aws; tests use only what they pass."""
    for name in ("AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def bedrock_client(fake: ThreadedFakeUpstream, key_id: str = KEY_ID, secret: str = SECRET) -> Any:
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=fake.base_url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=10, connect_timeout=5),
    )


@pytest.fixture
def client(threaded_fake: ThreadedFakeUpstream) -> Iterator[Any]:
    sdk = bedrock_client(threaded_fake)
    yield sdk
    sdk.close()


def stream_events(
    client: Any, model: str, seen: list[str] | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    """Every event of a stream (their names also go to `seen` as they arrive); the stream is
    closed even when it fails, so no connection is left open."""
    stream = client.converse_stream(modelId=model, messages=MESSAGES, **kwargs)["stream"]
    events = []
    try:
        for event in stream:
            events.append(event)
            if seen is not None:
                seen.append(next(iter(event)))
    finally:
        stream.close()
    return events


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and value types, not the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


def event_shapes(events: list[dict[str, Any]]) -> set[str]:
    return {json.dumps(shape(event), sort_keys=True) for event in events}


def example_events(name: str) -> list[dict[str, Any]]:
    """An example stream as botocore decodes it, `p` padding dropped as the SDK drops it."""
    listing = example_json("bedrock", f"{name}.events.json")
    return [
        {frame["headers"][":event-type"]: {k: v for k, v in frame["payload"].items() if k != "p"}}
        for frame in listing
        if frame["headers"][":message-type"] == "event"
    ]


# --------------------------------------------------------------------------- Converse


def test_converse_answer_is_parsed_with_usage_and_signed_path(threaded_fake, client) -> None:
    reply = client.converse(
        modelId=MODEL,
        messages=MESSAGES,
        system=[{"text": "Be brief."}],
        inferenceConfig={"maxTokens": 256, "temperature": 0.2, "stopSequences": ["END"]},
    )
    assert reply["output"]["message"] == {
        "role": "assistant",
        "content": [{"text": f"This is a fake reply from {MODEL}."}],
    }
    assert reply["stopReason"] == "end_turn"
    usage = reply["usage"]
    assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
    assert reply["ResponseMetadata"]["RequestId"]
    request = threaded_fake.requests[-1]
    # aiohttp decodes the path; the signature check saw it encoded (%3A) and accepted it.
    assert request.path == f"/model/{MODEL}/converse"
    auth = request.headers["Authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={KEY_ID}/")
    assert "/us-east-1/bedrock/aws4_request, SignedHeaders=" in auth


def test_converse_body_has_the_shape_of_the_example(client) -> None:
    reply = client.converse(modelId=f"{MODEL}~cached=2048", messages=MESSAGES)
    example = example_json("bedrock", "converse.json")
    body = {k: v for k, v in reply.items() if k != "ResponseMetadata"}
    assert shape(body) == shape(example)
    assert reply["usage"]["cacheReadInputTokens"] == 2048


def test_reasoning_and_tool_use_blocks_are_parsed(client) -> None:
    reply = client.converse(
        modelId=f"{MODEL}~reasoning=16~tools=2", messages=MESSAGES, toolConfig=TOOLS
    )
    blocks = reply["output"]["message"]["content"]
    reasoning = blocks[0]["reasoningContent"]["reasoningText"]
    assert reasoning["signature"] and len(reasoning["text"]) == 16 * 4
    uses = [block["toolUse"] for block in blocks[1:]]
    assert [use["name"] for use in uses] == ["get_weather", "get_weather"]
    assert all(use["toolUseId"].startswith("tooluse_") for use in uses)
    assert [use["input"]["call"] for use in uses] == [0, 1]
    assert reply["stopReason"] == "tool_use"


def test_cache_points_report_a_cache_write(client) -> None:
    reply = client.converse(
        modelId=MODEL,
        system=[{"text": "A long, reusable instruction."}, {"cachePoint": {"type": "default"}}],
        messages=MESSAGES,
    )
    usage = reply["usage"]
    assert usage["cacheWriteInputTokens"] > 0 and usage["cacheReadInputTokens"] == 0
    assert usage["totalTokens"] == (
        usage["inputTokens"]
        + usage["cacheWriteInputTokens"]
        + usage["cacheReadInputTokens"]
        + usage["outputTokens"]
    )


@pytest.mark.parametrize("stop_reason", STOP_REASONS)
def test_every_stop_reason_can_be_scripted(client, stop_reason: str) -> None:
    model = f"{MODEL}~stop_reason={stop_reason}"
    assert client.converse(modelId=model, messages=MESSAGES)["stopReason"] == stop_reason
    events = stream_events(client, model)
    assert events[-2] == {"messageStop": {"stopReason": stop_reason}}


def test_length_directive_stops_at_max_tokens(client) -> None:
    reply = client.converse(modelId=f"{MODEL}~length", messages=MESSAGES)
    assert reply["stopReason"] == "max_tokens"


# --------------------------------------------------------------------------- ConverseStream


def test_stream_with_reasoning_matches_the_text_example(threaded_fake, client) -> None:
    model = f"{MODEL}~reasoning=8~cached=2048~chunks=3"
    events = stream_events(client, model)
    example = example_events("converse_stream_text")
    assert [next(iter(e)) for e in events] == [
        "messageStart",
        *["contentBlockDelta"] * 4,  # three reasoning pieces and the signature
        "contentBlockStop",
        *["contentBlockDelta"] * 3,
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert event_shapes(events) == event_shapes(example)
    deltas = [e["contentBlockDelta"]["delta"] for e in events if "contentBlockDelta" in e]
    text = "".join(delta.get("text", "") for delta in deltas)
    assert text == f"This is a fake reply from {MODEL}."
    assert events[-1]["metadata"]["usage"]["cacheReadInputTokens"] == 2048
    assert threaded_fake.requests[-1].path == f"/model/{model}/converse-stream"


def test_streamed_tool_calls_have_the_shapes_of_the_tool_example(client) -> None:
    events = stream_events(client, f"{MODEL}~tools=2", toolConfig=TOOLS)
    example = example_events("converse_stream_tool_use")
    assert event_shapes(events) <= event_shapes(example)
    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert [s["contentBlockIndex"] for s in starts] == [0, 1]
    for start in starts:
        index = start["contentBlockIndex"]
        fragments = [
            e["contentBlockDelta"]["delta"]["toolUse"]["input"]
            for e in events
            if e.get("contentBlockDelta", {}).get("contentBlockIndex") == index
        ]
        assert fragments[0] == "" and len(fragments) > 2
        assert json.loads("".join(fragments))["call"] == index
    assert events[-2] == {"messageStop": {"stopReason": "tool_use"}}


def test_stream_exception_frame_raises_event_stream_error(client) -> None:
    model = f"{MODEL}~stream_error_after=2~exception=throttlingException"
    seen: list[str] = []
    with pytest.raises(EventStreamError) as caught:
        stream_events(client, model, seen)
    assert seen == ["messageStart", "contentBlockDelta", "contentBlockDelta"]
    assert caught.value.response["Error"]["Code"] == "throttlingException"
    assert "Too many tokens" in caught.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "exception",
    [
        "internalServerException",
        "modelStreamErrorException",
        "validationException",
        "serviceUnavailableException",
    ],
)
def test_each_stream_exception_type_reaches_the_sdk(client, exception: str) -> None:
    model = f"{MODEL}~stream_error_after=0~exception={exception}"
    with pytest.raises(EventStreamError) as caught:
        stream_events(client, model)
    assert caught.value.response["Error"]["Code"] == exception


def test_disconnect_after_cuts_the_body_mid_stream(threaded_fake, client) -> None:
    seen: list[str] = []
    with pytest.raises(ProtocolError):
        stream_events(client, f"{MODEL}~disconnect_after=2", seen)
    assert seen == ["messageStart", "contentBlockDelta", "contentBlockDelta"]


# --------------------------------------------------------------------------- errors

ERRORS = [
    ("status=400", "ValidationException", 400),
    ("status=context_window", "ValidationException", 400),
    ("error=ServiceQuotaExceededException", "ServiceQuotaExceededException", 400),
    ("status=401", "UnrecognizedClientException", 401),
    ("status=403", "AccessDeniedException", 403),
    ("status=404", "ResourceNotFoundException", 404),
    ("status=408", "ModelTimeoutException", 408),
    ("status=424", "ModelErrorException", 424),
    ("status=429", "ThrottlingException", 429),
    ("error=ModelNotReadyException", "ModelNotReadyException", 429),
    ("status=500", "InternalServerException", 500),
    ("status=503", "ServiceUnavailableException", 503),
]


@pytest.mark.parametrize(("directive", "code", "status"), ERRORS)
def test_scripted_errors_raise_the_sdk_exception_for_their_type(
    client, directive: str, code: str, status: int
) -> None:
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=f"{MODEL}~{directive}", messages=MESSAGES)
    error = caught.value
    assert error.response["Error"]["Code"] == code
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == status
    modeled = getattr(client.exceptions, code, None)
    if modeled is not None:  # auth failures are not in the service model
        assert isinstance(error, modeled)


def test_error_bodies_and_headers_match_the_examples(client) -> None:
    with pytest.raises(ClientError) as caught:
        client.converse(modelId=f"{MODEL}~status=429", messages=MESSAGES)
    headers = caught.value.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-errortype"].startswith("ThrottlingException:http://")
    assert (
        caught.value.response["Error"]["Message"]
        == example_json("bedrock", "error_429_throttling.json")["message"]
    )
    with pytest.raises(client.exceptions.ValidationException) as too_long:
        client.converse(modelId=f"{MODEL}~status=context_window", messages=MESSAGES)
    assert (
        too_long.value.response["Error"]["Message"]
        == example_json("bedrock", "error_400_validation.json")["message"]
    )


def test_fail_first_fails_then_answers(client) -> None:
    model = f"{MODEL}~fail_first=1~status=503"
    with pytest.raises(client.exceptions.ServiceUnavailableException):
        client.converse(modelId=model, messages=MESSAGES)
    assert client.converse(modelId=model, messages=MESSAGES)["stopReason"] == "end_turn"


def test_unknown_directive_is_a_validation_error(client) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="unknown directive"):
        client.converse(modelId=f"{MODEL}~bogus", messages=MESSAGES)


# --------------------------------------------------------------------------- auth


def test_wrong_secret_for_a_known_key_fails_signature_verification(threaded_fake) -> None:
    sdk = bedrock_client(threaded_fake, secret="not-the-secret")
    with pytest.raises(ClientError) as caught:
        sdk.converse(modelId=MODEL, messages=MESSAGES)
    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_key_is_checked_for_shape_only(threaded_fake) -> None:
    sdk = bedrock_client(threaded_fake, key_id="AKIAOTHER", secret="anything")
    assert sdk.converse(modelId=MODEL, messages=MESSAGES)["stopReason"] == "end_turn"


async def test_unsigned_and_wrongly_scoped_requests_are_refused(fake: FakeUpstream) -> None:
    url = f"{fake.base_url}/model/{MODEL}/converse"
    body = json.dumps({"messages": MESSAGES})
    wrong_scope = (
        "AWS4-HMAC-SHA256 Credential=AKID/20250428/us-east-1/bedrock-runtime/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
    )
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body) as response:
            assert response.status == 403
            assert response.headers["x-amzn-ErrorType"].startswith(
                "MissingAuthenticationTokenException"
            )
        headers = {"Authorization": wrong_scope, "X-Amz-Date": "20250428T120000Z"}
        async with session.post(url, data=body, headers=headers) as response:
            assert response.status == 403
            assert "scoped to correct service: 'bedrock'" in (await response.json())["message"]
        bearer = {"Authorization": "Bearer bedrock-api-key"}
        async with session.post(url, data=body, headers=bearer) as response:
            assert response.status == 200


# --------------------------------------------------------------------------- validation

INVALID = [
    ([{"role": "assistant", "content": [{"text": "Hi"}]}], "must start with a user message"),
    (
        [
            {"role": "user", "content": [{"text": "a"}]},
            {"role": "user", "content": [{"text": "b"}]},
        ],
        "must alternate between user and assistant",
    ),
    ([{"role": "user", "content": [{"text": "  "}]}], "is blank"),
    ([{"role": "user", "content": []}], "is empty"),
    (
        [
            {"role": "user", "content": [{"text": "Weather?"}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}],
            },
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": []}}]},
        ],
        "toolConfig field must be defined",
    ),
]


@pytest.mark.parametrize(("messages", "message"), INVALID)
def test_requests_bedrock_would_reject_are_validation_errors(
    client, messages: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(client.exceptions.ValidationException, match=message):
        client.converse(modelId=MODEL, messages=messages)


def test_tool_results_must_answer_the_previous_tool_calls(client) -> None:
    messages = [
        {"role": "user", "content": [{"text": "Weather?"}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {}}}],
        },
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t2", "content": []}}]},
    ]
    with pytest.raises(client.exceptions.ValidationException, match="for the following Ids: t1"):
        client.converse(modelId=MODEL, messages=messages, toolConfig=TOOLS)


# --------------------------------------------------------------------------- frames


@pytest.mark.parametrize("name", EXAMPLE_STREAMS)
def test_frame_encoder_reproduces_the_example_binaries(name: str) -> None:
    raw = example_path("bedrock", f"{name}.bin").read_bytes()
    listing = example_json("bedrock", f"{name}.events.json")
    encoded = b"".join(
        encode_frame(
            encode_headers(frame["headers"]),
            json.dumps(frame["payload"], separators=(",", ":")).encode(),
        )
        for frame in listing
    )
    assert encoded == raw


def test_rendered_frames_decode_with_botocore_and_carry_padding() -> None:
    bedrock = parse_bedrock_scenario(f"{MODEL}~tools=1~reasoning=4")
    answer: Answer = decide(bedrock, read_request(json.dumps({"messages": MESSAGES}).encode()))
    rendered = render_stream(answer)
    raw = b"".join(
        [*rendered.opening, *(f for step in rendered.steps for f in step), *rendered.closing]
    )
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    messages = list(buffer)
    assert len(messages) == len(rendered.opening) + sum(map(len, rendered.steps)) + 2
    for message in messages:
        assert message.headers[":message-type"] == "event"
        assert message.headers[":content-type"] == "application/json"
        assert json.loads(message.payload)["p"]
    assert [m.headers[":event-type"] for m in messages[-2:]] == ["messageStop", "metadata"]


# --------------------------------------------------------------------------- InvokeModel (Titan)


def invoke_json(client: Any, model: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.invoke_model(modelId=model, body=json.dumps(body))
    assert response["contentType"] == "application/json"
    answer: dict[str, Any] = json.loads(response["body"].read())
    return answer


def test_titan_v2_embeddings_are_parsed_with_their_size_and_token_count(client) -> None:
    answer = invoke_json(client, "amazon.titan-embed-text-v2:0", {"inputText": "hello world"})
    assert len(answer["embedding"]) == 1024
    assert answer["embeddingsByType"] == {"float": answer["embedding"]}
    assert answer["inputTextTokenCount"] == 3
    small = invoke_json(
        client, "amazon.titan-embed-text-v2:0", {"inputText": "hello world", "dimensions": 256}
    )
    assert len(small["embedding"]) == 256
    g1 = invoke_json(client, "amazon.titan-embed-text-v1", {"inputText": "hello world"})
    assert len(g1["embedding"]) == 1536 and set(g1) == {"embedding", "inputTextTokenCount"}


def test_titan_requests_titan_would_reject_are_validation_errors(client) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="extraneous key"):
        invoke_json(client, "amazon.titan-embed-text-v1", {"inputText": "a", "dimensions": 256})
    with pytest.raises(client.exceptions.ValidationException, match="not a valid enum"):
        invoke_json(client, "amazon.titan-embed-text-v2:0", {"inputText": "a", "dimensions": 3})
    with pytest.raises(client.exceptions.ThrottlingException):
        invoke_json(client, "amazon.titan-embed-text-v2:0~status=429", {"inputText": "a"})
