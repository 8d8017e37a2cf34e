"""The fake Anthropic Messages API, proven by the official `anthropic` SDK parsing every form it
serves, and compared structurally with the shared wire examples (issue #7)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic.types import MessageParam

from tests.wire_examples import example_path
from workers.testing import FakeUpstream
from workers.testing.anthropic import split_stop_reason
from workers.testing.scenario import ScenarioError

from .conftest import example_json

MODEL = "claude-haiku-4-5-20251001"
HI: list[MessageParam] = [{"role": "user", "content": "Capital of France?"}]
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
THINKING = {"type": "enabled", "budget_tokens": 1024}
TIMEOUT_S = 10


@pytest.fixture
async def claude(fake: FakeUpstream) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=fake.base_url, api_key="sk-ant-test", max_retries=0, timeout=TIMEOUT_S
    ) as client:
        yield client


async def create(claude: anthropic.AsyncAnthropic, model: str, **fields: Any) -> Any:
    fields.setdefault("max_tokens", 2048)
    fields.setdefault("messages", HI)
    async with asyncio.timeout(TIMEOUT_S):
        return await claude.messages.create(model=model, **fields)


async def final_message(claude: anthropic.AsyncAnthropic, model: str, **fields: Any) -> Any:
    fields.setdefault("max_tokens", 2048)
    fields.setdefault("messages", HI)
    async with asyncio.timeout(TIMEOUT_S):
        async with claude.messages.stream(model=model, **fields) as stream:
            return await stream.get_final_message()


async def raw_post(
    fake: FakeUpstream, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    sent = (
        {"x-api-key": "sk-ant", "anthropic-version": "2023-06-01"} if headers is None else headers
    )
    async with asyncio.timeout(TIMEOUT_S), aiohttp.ClientSession() as http:
        async with http.post(fake.base_url + "/v1/messages", json=body, headers=sent) as response:
            return response.status, dict(response.headers), await response.read()


def sse_events(body: bytes) -> list[tuple[str, Any]]:
    """(event name, data) of each event; asserts the `event:` + `data:` framing."""
    events = []
    for block in body.decode().replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: "), block
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name_line.removeprefix("event: ")
        events.append((data["type"], data))
    return events


def shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


def stream_shapes(events: list[tuple[str, Any]]) -> list[Any]:
    """Event shapes without pings (they come anywhere), runs of equal shapes collapsed."""
    shapes = [shape(data) for name, data in events if name != "ping"]
    return [s for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1]]


def example_stream(name: str) -> list[tuple[str, Any]]:
    return sse_events(example_path("anthropic", name).read_bytes())


# --------------------------------------------------------------------------- the SDK parses it


async def test_sdk_parses_a_text_message_and_sent_its_auth_headers(fake, claude):
    message = await create(claude, MODEL)
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == f"This is a fake reply from {MODEL}."
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert message.model == MODEL and message.id.startswith("msg_")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    request = fake.requests[-1]
    assert (request.method, request.path) == ("POST", "/v1/messages")
    # anthropic-python 2.x sends the key as a bearer token and a newer version date.
    assert "sk-ant-test" in (
        request.headers.get("x-api-key"),
        request.headers.get("authorization", "")[7:],
    )
    assert len(request.headers["anthropic-version"]) == 10


async def test_sdk_stream_helper_rebuilds_thinking_with_its_signature(claude):
    final = await final_message(claude, MODEL + "~reasoning=24", thinking=THINKING)
    assert [block.type for block in final.content] == ["thinking", "text"]
    assert final.content[0].thinking and final.content[0].signature.startswith("EqQB")
    assert final.content[1].text == f"This is a fake reply from {MODEL}."
    plain = await create(claude, MODEL + "~reasoning=24", thinking=THINKING)
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.output_tokens_details.thinking_tokens == 24


async def test_sdk_sees_the_event_sequence_without_pings(claude):
    async with asyncio.timeout(TIMEOUT_S):
        stream = await claude.messages.create(model=MODEL, max_tokens=64, messages=HI, stream=True)
        kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds[1:3] == ["content_block_start", "content_block_delta"]
    assert kinds.count("content_block_delta") == 6  # the default number of chunks


async def test_thinking_enabled_without_a_directive_still_thinks(claude):
    message = await create(claude, MODEL, thinking=THINKING)
    assert [block.type for block in message.content] == ["thinking", "text"]


@pytest.mark.parametrize("streamed", [False, True])
async def test_sdk_parses_parallel_tool_use_after_a_preamble(claude, streamed):
    read = final_message if streamed else create
    message = await read(claude, MODEL + "~tools=2", tools=[WEATHER])
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use"]
    calls = message.content[1:]
    assert [call.name for call in calls] == ["get_weather", "get_weather"]
    assert [call.input["call"] for call in calls] == [0, 1]
    assert len({call.id for call in calls}) == 2 and calls[0].id.startswith("toolu_")
    assert message.stop_reason == "tool_use"


async def test_a_forced_tool_is_called_without_a_preamble(claude):
    forced = {"type": "tool", "name": "get_weather"}
    message = await final_message(claude, MODEL + "~tools=1", tools=[WEATHER], tool_choice=forced)
    assert [block.type for block in message.content] == ["tool_use"]


async def test_cached_prompt_tokens_are_reported_apart_from_input(claude):
    message = await create(claude, MODEL + "~cached=2048")
    usage = message.usage
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (2048, 0)
    assert usage.input_tokens == 0  # the prompt is shorter than the cached prefix
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0


async def test_a_cache_control_breakpoint_writes_the_prompt_to_the_cache(claude):
    system = [{"type": "text", "text": "Be brief. " * 40, "cache_control": {"type": "ephemeral"}}]
    final = await final_message(claude, MODEL, system=system)
    usage = final.usage
    assert usage.cache_creation_input_tokens > 100 and usage.input_tokens == 0
    assert usage.cache_creation.ephemeral_5m_input_tokens == usage.cache_creation_input_tokens


@pytest.mark.parametrize(
    ("directive", "stop_reason"),
    [
        ("", "end_turn"),
        ("~length", "max_tokens"),
        ("~tools=1", "tool_use"),
        ("~stop_reason=refusal", "refusal"),
        ("~stop_reason=pause_turn", "pause_turn"),
        ("~stop_reason=model_context_window_exceeded", "model_context_window_exceeded"),
    ],
)
@pytest.mark.parametrize("streamed", [False, True])
async def test_every_stop_reason_reaches_the_sdk(claude, directive, stop_reason, streamed):
    read = final_message if streamed else create
    message = await read(claude, MODEL + directive)
    assert message.stop_reason == stop_reason


async def test_a_stop_sequence_cuts_the_answer_and_is_named(claude):
    for read in (create, final_message):
        message = await read(claude, MODEL, stop_sequences=["NEVER", "reply"])
        assert message.content[0].text == "This is a fake "
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "reply")


ERRORS = [
    ("400", anthropic.BadRequestError, "invalid_request_error"),
    ("context_window", anthropic.BadRequestError, "invalid_request_error"),
    ("content_filter", anthropic.BadRequestError, "invalid_request_error"),
    ("401", anthropic.AuthenticationError, "authentication_error"),
    ("402", anthropic.PaymentRequiredError, "billing_error"),
    ("403", anthropic.PermissionDeniedError, "permission_error"),
    ("404", anthropic.NotFoundError, "not_found_error"),
    ("413", anthropic.ContentTooLargeError, "request_too_large"),
    ("429", anthropic.RateLimitError, "rate_limit_error"),
    ("500", anthropic.InternalServerError, "api_error"),
    ("504", anthropic.GatewayTimeoutError, "timeout_error"),
    ("529", anthropic.OverloadedError, "overloaded_error"),
]


@pytest.mark.parametrize(("status", "error_class", "error_type"), ERRORS)
async def test_each_scripted_error_raises_the_sdk_class(claude, status, error_class, error_type):
    with pytest.raises(error_class) as caught:
        await create(claude, f"{MODEL}~status={status}")
    error = caught.value
    assert error.type == error_type and error.api_message
    assert error.request_id and error.request_id.startswith("req_")
    assert error.body["type"] == "error"


async def test_a_rate_limit_names_when_to_retry(claude):
    with pytest.raises(anthropic.RateLimitError) as caught:
        await create(claude, f"{MODEL}~status=429~retry_after=7")
    headers = caught.value.response.headers
    assert headers["retry-after"] == "7" and headers["x-should-retry"] == "true"
    assert headers["anthropic-ratelimit-input-tokens-remaining"] == "0"
    assert headers["anthropic-ratelimit-input-tokens-reset"].endswith("Z")


async def test_an_error_event_mid_stream_raises_after_the_partial_output(claude):
    kinds: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with asyncio.timeout(TIMEOUT_S):
            stream = await create(claude, MODEL + "~stream_error_after=1", stream=True)
            async for event in stream:
                kinds.append(event.type)
    assert kinds == ["message_start", "content_block_start", "content_block_delta"]
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"


async def test_a_disconnect_mid_stream_breaks_the_sdk_stream(fake, claude):
    # Once a stream has started, the SDK lets its HTTP client's own error through (httpx's or
    # httpx2's RemoteProtocolError, depending on the SDK version).
    with pytest.raises(Exception, match="incomplete chunked read"):
        await final_message(claude, MODEL + "~disconnect_after=2")
    assert fake.requests[-1].json["stream"] is True


async def test_a_hanging_answer_times_out_and_is_seen_as_a_disconnect(fake):
    async with anthropic.AsyncAnthropic(
        base_url=fake.base_url, api_key="k", max_retries=0, timeout=0.3
    ) as client:
        with pytest.raises(anthropic.APITimeoutError):
            await create(client, MODEL + "~hang")
    async with asyncio.timeout(TIMEOUT_S):
        [disconnect] = await fake.wait_for_disconnects(1)
    assert disconnect.path == "/v1/messages"


async def test_fail_first_fails_then_answers(claude):
    with pytest.raises(anthropic.OverloadedError):
        await create(claude, MODEL + "~status=529~fail_first=1")
    message = await create(claude, MODEL + "~status=529~fail_first=1")
    assert message.stop_reason == "end_turn"


def test_the_sync_sdk_parses_a_stream_from_the_threaded_fake(threaded_fake):
    with anthropic.Anthropic(
        base_url=threaded_fake.base_url, api_key="k", max_retries=0, timeout=TIMEOUT_S
    ) as client:
        with client.messages.stream(model=MODEL, max_tokens=64, messages=HI) as stream:
            assert stream.get_final_text() == f"This is a fake reply from {MODEL}."


# --------------------------------------------------------------------------- what it refuses


async def test_a_wrong_or_missing_key_is_an_authentication_error():
    async with FakeUpstream(api_key="sk-right") as fake:
        async with anthropic.AsyncAnthropic(
            base_url=fake.base_url, api_key="sk-wrong", max_retries=0, timeout=TIMEOUT_S
        ) as client:
            with pytest.raises(anthropic.AuthenticationError) as caught:
                await create(client, MODEL)
        assert caught.value.api_message == "invalid x-api-key"
        status, _, body = await raw_post(fake, {}, {"anthropic-version": "2023-06-01"})
        assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"


async def test_the_anthropic_version_header_is_required(fake):
    body = {"model": MODEL, "max_tokens": 8, "messages": HI}
    status, _, raw = await raw_post(fake, body, {"x-api-key": "k"})
    assert status == 400
    assert json.loads(raw)["error"]["message"] == "anthropic-version: header is required"


async def test_a_missing_max_tokens_gets_the_example_error_body(fake):
    status, headers, raw = await raw_post(fake, {"model": MODEL, "messages": HI})
    expected = example_json("anthropic", "error_400_invalid_request.json")
    got = json.loads(raw)
    assert status == 400 and got["request_id"] == headers["request-id"]
    assert {**got, "request_id": expected["request_id"]} == expected


@pytest.mark.parametrize(
    ("thinking", "max_tokens", "message"),
    [
        ({"type": "enabled", "budget_tokens": 512}, 4096, "greater than or equal to 1024"),
        ({"type": "enabled", "budget_tokens": 2048}, 2048, "must be greater than"),
    ],
)
async def test_thinking_budgets_are_checked_as_the_service_does(
    claude, thinking, max_tokens, message
):
    with pytest.raises(anthropic.BadRequestError) as caught:
        await create(claude, MODEL, max_tokens=max_tokens, thinking=thinking)
    assert message in (caught.value.api_message or "")


async def test_a_temperature_above_one_is_refused(claude):
    # anthropic-python 2.13 no longer lists temperature among create()'s arguments.
    with pytest.raises(anthropic.BadRequestError) as caught:
        await create(claude, MODEL, extra_body={"temperature": 1.5})
    assert (caught.value.api_message or "").startswith("temperature:")


async def test_an_unknown_stop_reason_directive_is_refused(claude):
    with pytest.raises(anthropic.BadRequestError) as caught:
        await create(claude, MODEL + "~stop_reason=sleepy")
    assert "stop_reason must be one of" in (caught.value.api_message or "")
    with pytest.raises(ScenarioError):
        split_stop_reason("m~stop_reason=sleepy")
    assert split_stop_reason("m~cached=4~stop_reason=refusal") == ("m~cached=4", "refusal")


# --------------------------------------------------------------------------- the examples' shape


async def test_a_message_has_the_example_structure(fake):
    body = {"model": MODEL + "~cached=2048", "max_tokens": 2048, "messages": HI}
    status, headers, raw = await raw_post(fake, {**body, "thinking": THINKING})
    assert (status, headers["Content-Type"]) == (200, "application/json")
    got = json.loads(raw)
    # The SDK's Usage type has output_tokens_details; the example predates it.
    assert set(got["usage"].pop("output_tokens_details")) == {"thinking_tokens"}
    assert shape(got) == shape(example_json("anthropic", "message.json"))


async def test_a_thinking_stream_matches_the_example_event_by_event(fake):
    body = {"model": MODEL, "max_tokens": 2048, "messages": HI, "stream": True}
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    status, headers, raw = await raw_post(fake, {**body, "thinking": THINKING, "system": system})
    assert (status, headers["Content-Type"]) == (200, "text/event-stream; charset=utf-8")
    events = sse_events(raw)
    message_delta = next(data for name, data in events if name == "message_delta")
    assert set(message_delta["usage"].pop("output_tokens_details")) == {"thinking_tokens"}
    assert stream_shapes(events) == stream_shapes(example_stream("stream_text_thinking.sse"))
    assert [name for name, _ in events].count("ping") == 1


async def test_a_tool_use_stream_matches_the_example_event_by_event(fake):
    body = {"model": MODEL + "~tools=1", "max_tokens": 2048, "messages": HI, "stream": True}
    _, _, raw = await raw_post(fake, {**body, "tools": [WEATHER]})
    events = sse_events(raw)
    assert stream_shapes(events) == stream_shapes(example_stream("stream_tool_use.sse"))
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    fragments = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
    assert fragments[0] == "" and json.loads("".join(fragments))["call"] == 0


async def test_a_stream_error_matches_the_example(fake):
    body = {"model": MODEL + "~stream_error_after=1", "max_tokens": 64, "messages": HI}
    _, _, raw = await raw_post(fake, {**body, "stream": True})
    expected = example_path("anthropic", "stream_error_overloaded.sse").read_bytes()
    assert raw.endswith(expected.split(b"\n\n")[-2] + b"\n\n")  # the error event, byte for byte
    # The example's message_start usage is an older, shorter form; compare what follows it.
    events = sse_events(raw)[1:]
    assert stream_shapes(events) == stream_shapes(example_stream("stream_error_overloaded.sse")[1:])


@pytest.mark.parametrize(
    ("status", "example"),
    [("529", "error_529_overloaded.json"), ("429", "error_429_rate_limit.json")],
)
async def test_error_bodies_match_the_examples(fake, status, example):
    body = {"model": f"{MODEL}~status={status}", "max_tokens": 64, "messages": HI}
    code, headers, raw = await raw_post(fake, body)
    expected = example_json("anthropic", example)
    got = json.loads(raw)
    assert code == int(status) and headers["Content-Type"] == "application/json"
    assert {**got, "request_id": expected["request_id"]} == expected


# --------------------------------------------------------------------------- assistant prefill

ANSWER = f"This is a fake reply from {MODEL}."


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_final_assistant_message_is_continued_and_only_the_rest_sent(
    fake, claude, streamed
):
    prefill = "This is a fake"
    messages: list[MessageParam] = [*HI, {"role": "assistant", "content": prefill}]
    send = final_message if streamed else create
    message = await send(claude, MODEL + "~chunks=8", messages=messages)
    assert message.content[0].text == ANSWER.removeprefix(prefill)
    assert message.usage.output_tokens == -(-len(ANSWER.removeprefix(prefill)) // 4)
    # The prefill counts as input, as the service counts it.
    assert message.usage.input_tokens == -(-len("Capital of France?" + prefill) // 4)


async def test_a_prefill_other_than_the_answers_start_is_refused(claude):
    messages: list[MessageParam] = [*HI, {"role": "assistant", "content": "This is a real"}]
    with pytest.raises(anthropic.BadRequestError, match="not how this model's answer starts"):
        await create(claude, MODEL, messages=messages)


@pytest.mark.parametrize(
    ("model", "prefill", "fields", "message"),
    [
        (MODEL, "This is ", {}, "cannot end with trailing whitespace"),
        (MODEL, "This", {"thinking": THINKING}, "must start with a thinking block"),
        ("claude-opus-4-6", "This", {}, "does not support assistant message prefill"),
        ("claude-sonnet-5", "This", {}, "does not support assistant message prefill"),
    ],
)
async def test_prefills_the_service_refuses_are_refused_in_its_words(
    claude, model, prefill, fields, message
):
    messages: list[MessageParam] = [*HI, {"role": "assistant", "content": prefill}]
    with pytest.raises(anthropic.BadRequestError, match=message):
        await create(claude, model, messages=messages, **fields)


async def test_sdk_parses_the_token_count(claude):
    counted = await claude.messages.count_tokens(model=MODEL, messages=HI)
    assert counted.input_tokens > 0
