"""The Anthropic adapter both ways, through the in-process SDK against the fake Messages API
(issue #7): the native body it sends, and the OpenAI objects it makes of what comes back."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests import wire_examples
from workers import errors, pricing
from workers.providers.anthropic.errors import error_from_response
from workers.providers.anthropic.request import NEUTRAL_VALUES, REFUSED_PARAMS
from workers.providers.anthropic.response import parse_completion
from workers.providers.anthropic.stream import StreamTranslator
from workers.providers.sse_reader import iter_sse
from workers.sdk import calls as sdk
from workers.sdk.assemble import stream_chunk_builder
from workers.sdk.stream import ChatStream
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion, ChatCompletionChunk

KEY = "sk-ant-test"
MODEL = "claude-haiku-4-5-20251001"
HELLO = [{"role": "user", "content": "Say hello"}]
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
# A 1x1 PNG.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5Er"
    "kJggg=="
)
TIMEOUT_S = 10


async def complete(
    fake: FakeUpstream, directives: str = "", messages: list[Any] = HELLO, **kwargs: Any
) -> ChatCompletion:
    kwargs.setdefault("api_key", KEY)
    async with asyncio.timeout(TIMEOUT_S):
        response = await sdk.acompletion(
            f"anthropic/{MODEL}{directives}",
            messages,
            api_base=fake.base_url,
            base_model=MODEL,
            **kwargs,
        )
    assert isinstance(response, ChatCompletion)
    return response


async def stream(
    fake: FakeUpstream, directives: str = "", messages: list[Any] = HELLO, **kwargs: Any
) -> tuple[list[ChatCompletionChunk], ChatStream]:
    async with asyncio.timeout(TIMEOUT_S):
        chat_stream = await sdk.acompletion(
            f"anthropic/{MODEL}{directives}",
            messages,
            stream=True,
            api_base=fake.base_url,
            api_key=KEY,
            base_model=MODEL,
            **kwargs,
        )
        assert isinstance(chat_stream, ChatStream)
        return [chunk async for chunk in chat_stream], chat_stream


def sent(fake: FakeUpstream) -> dict[str, Any]:
    """The native body the fake received last."""
    body: dict[str, Any] = fake.requests[-1].json
    return body


def price() -> pricing.ModelPrice:
    found = pricing.lookup_price("anthropic", MODEL)
    assert found is not None
    return found


# --------------------------------------------------------------------------- text, auth, body


async def test_a_text_completion_has_content_usage_and_cost(fake):
    response = await complete(fake)
    choice = response.choices[0]
    assert choice.message.content == f"This is a fake reply from {MODEL}."
    assert choice.finish_reason == "stop" and choice.message.tool_calls is None
    assert response.id.startswith("msg_") and response.model == MODEL
    usage = response.usage
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    expected = usage.prompt_tokens * price().input_cost_per_token
    expected += usage.completion_tokens * (price().output_cost_per_token or 0)
    assert response.hidden_params["cost_usd"] == pytest.approx(expected)
    request = fake.requests[-1]
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in request.headers


async def test_a_representative_request_becomes_this_native_body(fake):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "noon"},
        {"role": "user", "content": "Thanks"},
    ]
    time_tool = {"type": "function", "function": {"name": "get_time", "strict": True}}
    await complete(
        fake,
        messages=messages,
        tools=[WEATHER, time_tool],
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0.2,
        top_p=0.9,
        stop=["END"],
        user="u-123",
        max_tokens=300,
    )
    assert sent(fake) == {
        "model": MODEL,
        "max_tokens": 300,
        "system": "Be brief.\n\nAnswer in French.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi"},
                    {"type": "text", "text": "Weather here?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "noon"},
                    {"type": "text", "text": "Thanks"},
                ],
            },
        ],
        "tools": [
            {
                "name": "get_weather",
                "description": "Weather in a city",
                "input_schema": WEATHER["function"]["parameters"],
            },
            {
                "name": "get_time",
                "input_schema": {"type": "object", "properties": {}},
                "strict": True,
            },
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-123"},
    }


async def test_max_tokens_defaults_per_model_and_honours_the_caller(fake):
    await complete(fake)
    # Haiku 4.5 can write 64k tokens; the default is capped so long prompts still fit.
    assert sent(fake)["max_tokens"] == 8192
    await complete(fake, max_completion_tokens=77)
    assert sent(fake)["max_tokens"] == 77
    async with asyncio.timeout(TIMEOUT_S):
        await sdk.acompletion(
            "anthropic/claude-unknown", HELLO, api_base=fake.base_url, api_key=KEY
        )
    assert sent(fake)["max_tokens"] == 4096


async def test_beta_headers_pass_through_and_api_base_may_name_the_endpoint(fake):
    for base in (fake.base_url + "/v1", fake.base_url + "/v1/messages/"):
        async with asyncio.timeout(TIMEOUT_S):
            await sdk.acompletion(
                f"anthropic/{MODEL}",
                HELLO,
                api_base=base,
                api_key=KEY,
                extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
            )
        request = fake.requests[-1]
        assert request.path == "/v1/messages"
        assert request.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"


async def test_credentials_and_base_come_from_the_anthropic_environment(fake):
    environ = {"ANTHROPIC_API_KEY": "sk-env", "ANTHROPIC_API_BASE": fake.base_url}
    async with asyncio.timeout(TIMEOUT_S):
        response = await sdk.acompletion(f"anthropic/{MODEL}", HELLO, environ=environ)
    assert isinstance(response, ChatCompletion)
    assert fake.requests[-1].headers["x-api-key"] == "sk-env"


async def test_a_missing_key_fails_before_anything_is_sent(fake):
    with pytest.raises(errors.AuthenticationFailed, match="ANTHROPIC_API_KEY"):
        await sdk.acompletion(f"anthropic/{MODEL}", HELLO, api_base=fake.base_url, environ={})
    assert fake.request_count == 0


# --------------------------------------------------------------------------- messages


async def test_system_blocks_carry_cache_control_to_system_parts_tools_and_messages(fake):
    ephemeral = {"type": "ephemeral"}
    messages = [
        {"role": "system", "content": "Rules.", "cache_control": ephemeral},
        {"role": "system", "content": "More rules."},
        {"role": "user", "content": [{"type": "text", "text": "Doc", "cache_control": ephemeral}]},
        {"role": "assistant", "content": "Read it."},
        {
            "role": "user",
            "content": "Summary?",
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        },
    ]
    await complete(fake, messages=messages, tools=[{**WEATHER, "cache_control": ephemeral}])
    body = sent(fake)
    assert body["system"] == [
        {"type": "text", "text": "Rules.", "cache_control": ephemeral},
        {"type": "text", "text": "More rules."},
    ]
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Doc", "cache_control": ephemeral}]},
        {"role": "assistant", "content": "Read it."},
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "Summary?",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                }
            ],
        },
    ]
    assert body["tools"][0]["cache_control"] == ephemeral


async def test_an_image_url_is_sent_by_url_and_other_parts_are_refused(fake):
    url = "https://example.com/cat.jpg"
    parts = [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    await complete(fake, messages=[{"role": "user", "content": parts}])
    assert sent(fake)["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "url", "url": url},
    }
    bad_parts = [
        (
            {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}},
            "image_url.url",
        ),
        ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, "image_url.url"),
        ({"type": "input_audio", "input_audio": {"data": "AAA=", "format": "wav"}}, "type"),
    ]
    for part, field in bad_parts:
        with pytest.raises(errors.InvalidRequest) as caught:
            await complete(fake, messages=[{"role": "user", "content": [part]}])
        assert caught.value.param == f"messages[0].content[0].{field}"


async def test_a_pdf_file_part_becomes_a_document_block(fake):
    part = {
        "type": "file",
        "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
    }
    await complete(fake, messages=[{"role": "user", "content": [part]}])
    assert sent(fake)["messages"][0]["content"] == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        }
    ]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (
            [{"role": "system", "content": "x"}, {"role": "assistant", "content": "Hi"}],
            "messages[1].role",
        ),
        ([{"role": "system", "content": "Only rules"}], "messages"),
        ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role"),
    ],
)
async def test_a_conversation_anthropic_cannot_take_is_refused(fake, messages, param):
    with pytest.raises(errors.InvalidRequest) as caught:
        await complete(fake, messages=messages)
    assert caught.value.param == param
    assert fake.request_count == 0


@pytest.mark.parametrize("arguments", ['{"city": ', '["Paris"]'])
async def test_tool_call_arguments_that_are_not_a_json_object_are_refused(fake, arguments):
    call = {
        "id": "t1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }
    messages = [
        *HELLO,
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "t1", "content": "x"},
    ]
    with pytest.raises(errors.InvalidRequest) as caught:
        await complete(fake, messages=messages, tools=[WEATHER])
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"


# --------------------------------------------------------------------------- tools


async def test_tool_calls_come_back_with_json_arguments(fake):
    response = await complete(fake, "~tools=2", tools=[WEATHER])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look that up."
    calls = choice.message.tool_calls
    assert calls is not None and [call.function.name for call in calls] == ["get_weather"] * 2
    assert calls[0].id.startswith("toolu_") and calls[0].type == "function"
    assert calls[1].function.arguments == '{"query":"Say hello","call":1}'


async def test_streamed_tool_calls_are_indexed_among_tool_calls_not_blocks(fake):
    chunks, _ = await stream(fake, "~tools=2", tools=[WEATHER])
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    headers = [d for d in deltas if d.id]
    # Anthropic's blocks are 0 (text), 1 and 2 (tool_use); OpenAI's indexes are 0 and 1.
    assert [d.index for d in headers] == [0, 1]
    assert all(d.type == "function" and d.function and d.function.arguments == "" for d in headers)
    assert {d.index for d in deltas} == {0, 1}
    message = stream_chunk_builder(chunks).choices[0].message
    assert message.tool_calls is not None
    assert [call.function.arguments for call in message.tool_calls] == [
        '{"query":"Say hello","call":0}',
        '{"query":"Say hello","call":1}',
    ]
    assert stream_chunk_builder(chunks).choices[0].finish_reason == "tool_calls"


async def test_tool_results_go_back_in_one_user_message(fake):
    first = await complete(fake, "~tools=2", tools=[WEATHER])
    assistant = first.choices[0].message.model_dump()
    calls = assistant["tool_calls"]
    results = [
        {"role": "tool", "tool_call_id": c["id"], "content": f"r{i}"} for i, c in enumerate(calls)
    ]
    await complete(fake, messages=[*HELLO, assistant, *results], tools=[WEATHER])
    turns = sent(fake)["messages"]
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user"]
    assert [block["type"] for block in turns[1]["content"]] == ["text", "tool_use", "tool_use"]
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": calls[0]["id"], "content": "r0"},
        {"type": "tool_result", "tool_use_id": calls[1]["id"], "content": "r1"},
    ]


@pytest.mark.parametrize(
    ("tool_choice", "parallel", "native"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
async def test_tool_choice_maps_to_anthropic_words(fake, tool_choice, parallel, native):
    extra = {
        k: v
        for k, v in {"tool_choice": tool_choice, "parallel_tool_calls": parallel}.items()
        if v is not None
    }
    await complete(fake, tools=[WEATHER], **extra)
    assert sent(fake).get("tool_choice") == native


# --------------------------------------------------------------------------- thinking


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 4096), ("high", 16384)])
async def test_reasoning_effort_becomes_a_thinking_budget_below_max_tokens(fake, effort, budget):
    await complete(fake, reasoning_effort=effort, max_tokens=1000)
    body = sent(fake)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == budget + 1000


async def test_thinking_passes_through_and_conflicts_are_refused(fake):
    thinking = {"type": "enabled", "budget_tokens": 2048}
    await complete(fake, thinking=thinking, max_tokens=4000)
    assert sent(fake)["thinking"] == thinking and sent(fake)["max_tokens"] == 4000
    await complete(fake, reasoning_effort="none")
    assert "thinking" not in sent(fake)
    for kwargs in ({"thinking": thinking, "reasoning_effort": "low"}, {"reasoning_effort": "huge"}):
        with pytest.raises(errors.InvalidRequest) as caught:
            await complete(fake, **kwargs)
        assert caught.value.param == "reasoning_effort"


async def test_thinking_comes_back_signed_and_goes_back_unchanged(fake):
    first = await complete(fake, "~tools=1", tools=[WEATHER], reasoning_effort="low")
    message = first.choices[0].message
    assert message.reasoning_content and message.thinking_blocks
    [block] = message.thinking_blocks
    assert block["type"] == "thinking" and block["signature"].startswith("EqQB")
    assert message.content == "Let me look that up."  # reasoning never mixes into content
    assert first.usage is not None and first.usage.reasoning_tokens == 16
    assistant = message.model_dump()
    result = {"role": "tool", "tool_call_id": assistant["tool_calls"][0]["id"], "content": "18C"}
    await complete(
        fake, messages=[*HELLO, assistant, result], tools=[WEATHER], reasoning_effort="low"
    )
    assistant_turn = sent(fake)["messages"][1]["content"]
    assert assistant_turn[0] == block
    assert [b["type"] for b in assistant_turn] == ["thinking", "text", "tool_use"]


async def test_streamed_thinking_arrives_as_reasoning_deltas_then_one_signed_block(fake):
    chunks, chat_stream = await stream(fake, "~reasoning=8")
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join(d.reasoning_content or "" for d in deltas)
    blocks = [b for d in deltas for b in d.thinking_blocks or ()]
    assert reasoning and blocks == [
        {"type": "thinking", "thinking": reasoning, "signature": blocks[0]["signature"]}
    ]
    assert not any(d.content and d.reasoning_content for d in deltas)
    rebuilt = stream_chunk_builder(chunks).choices[0].message
    assert rebuilt.thinking_blocks == blocks and rebuilt.reasoning_content == reasoning
    assert chat_stream.usage is not None and chat_stream.usage.reasoning_tokens == 8


# --------------------------------------------------------------------------- usage and cost


async def test_cache_reads_are_prompt_tokens_priced_at_the_cache_read_price(fake):
    response = await complete(fake, "~cached=2048")
    usage = response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (
        2048,
        2048,
        0,
    )
    p = price()
    expected = 2048 * (p.cache_read_input_token_cost or 0)
    expected += usage.completion_tokens * (p.output_cost_per_token or 0)
    assert response.hidden_params["cost_usd"] == pytest.approx(expected)


async def test_cache_writes_are_prompt_tokens_priced_at_the_cache_write_price(fake):
    system = [{"type": "text", "text": "Rules. " * 100, "cache_control": {"type": "ephemeral"}}]
    chunks, chat_stream = await stream(
        fake, messages=[{"role": "system", "content": system}, *HELLO]
    )
    usage = chat_stream.usage
    assert usage is not None and usage.cache_write_tokens > 100
    assert usage.prompt_tokens == usage.cache_write_tokens and usage.cached_tokens == 0
    p = price()
    expected = usage.cache_write_tokens * (p.cache_creation_input_token_cost or 0)
    expected += usage.completion_tokens * (p.output_cost_per_token or 0)
    assert chat_stream.hidden_params["cost_usd"] == pytest.approx(expected)
    assert all(chunk.usage is None for chunk in chunks)  # the caller did not ask for usage


async def test_a_stream_ends_with_its_usage_chunk_when_asked(fake):
    chunks, _ = await stream(fake, "~cached=64", stream_options={"include_usage": True})
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"This is a fake reply from {MODEL}."
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None and last.usage.cached_tokens == 64
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert len({chunk.id for chunk in chunks}) == 1


FINISH = [
    ("", {}, "stop"),
    ("~length", {}, "length"),
    ("~tools=1", {"tools": [WEATHER]}, "tool_calls"),
    ("", {"stop": ["reply"]}, "stop"),
    ("~stop_reason=pause_turn", {}, "stop"),
    ("~stop_reason=refusal", {}, "content_filter"),
    ("~stop_reason=model_context_window_exceeded", {}, "length"),
]


@pytest.mark.parametrize(("directives", "kwargs", "finish_reason"), FINISH)
async def test_every_stop_reason_has_its_finish_reason(fake, directives, kwargs, finish_reason):
    response = await complete(fake, directives, **kwargs)
    assert response.choices[0].finish_reason == finish_reason
    chunks, _ = await stream(fake, directives, **kwargs)
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == [finish_reason]


# --------------------------------------------------------------------------- errors

ERRORS = [
    ("status=400", errors.InvalidRequest, 400),
    ("status=context_window", errors.ContextWindowExceeded, 400),
    ("status=content_filter", errors.ContentPolicyViolation, 400),
    ("status=401", errors.AuthenticationFailed, 401),
    ("status=402", errors.QuotaExceeded, 429),
    ("status=403", errors.PermissionDenied, 403),
    ("status=404", errors.ModelNotFound, 404),
    ("status=413", errors.RequestTooLarge, 413),
    ("status=429~retry_after=3", errors.RateLimited, 429),
    ("status=500", errors.ProviderError, 500),
    ("status=504", errors.ProviderError, 502),
    ("status=529", errors.ServiceUnavailable, 503),
]


@pytest.mark.parametrize(("directives", "error_class", "status"), ERRORS)
@pytest.mark.parametrize("streamed", [False, True])
async def test_every_upstream_error_maps_to_its_class(
    fake, directives, error_class, status, streamed
):
    with pytest.raises(errors.SwitchboardError) as caught:
        if streamed:
            await stream(fake, f"~{directives}")
        else:
            await complete(fake, f"~{directives}")
    error = caught.value
    assert type(error) is error_class and error.http_status == status
    assert error.provider == "anthropic" and error.upstream_status is not None
    assert KEY not in str(error)
    if error_class is errors.RateLimited:
        assert error.retry_after_s == pytest.approx(3)
    assert error.retryable == (
        status in (500, 502, 503, 429) and error_class is not errors.QuotaExceeded
    )


async def test_a_429_without_retry_after_waits_for_the_ratelimit_reset(fake):
    with pytest.raises(errors.RateLimited) as caught:
        await complete(fake, "~status=429")
    # The fake's anthropic-ratelimit-*-reset is 12 s ahead, to the second.
    assert caught.value.retry_after_s == pytest.approx(12, abs=2)


async def test_overloaded_mid_stream_is_service_unavailable_after_the_chunks(fake):
    received: list[ChatCompletionChunk] = []
    async with asyncio.timeout(TIMEOUT_S):
        chat_stream = await sdk.acompletion(
            f"anthropic/{MODEL}~stream_error_after=2~chunk_delay=0.01",
            HELLO,
            stream=True,
            api_base=fake.base_url,
            api_key=KEY,
        )
        assert isinstance(chat_stream, ChatStream)
        with pytest.raises(errors.ServiceUnavailable) as caught:
            async for chunk in chat_stream:
                received.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert caught.value.message == "Overloaded" and caught.value.retryable


async def test_a_mid_stream_disconnect_is_a_provider_error(fake):
    with pytest.raises(errors.ProviderError):
        await stream(fake, "~disconnect_after=2~chunk_delay=0.01")


async def test_a_hanging_upstream_times_out(fake):
    with pytest.raises(errors.RequestTimeout):
        await complete(fake, "~hang", timeout=0.3)
    async with asyncio.timeout(TIMEOUT_S):
        await fake.wait_for_disconnects(1)


async def test_closing_a_stream_early_closes_the_upstream_connection(fake):
    async with asyncio.timeout(TIMEOUT_S):
        chat_stream = await sdk.acompletion(
            f"anthropic/{MODEL}~chunks=50~chunk_delay=0.05",
            HELLO,
            stream=True,
            api_base=fake.base_url,
            api_key=KEY,
        )
        assert isinstance(chat_stream, ChatStream)
        await anext(chat_stream)
        await chat_stream.aclose()
        assert await fake.wait_for_disconnects(1)


async def test_embeddings_are_refused(fake):
    with pytest.raises(errors.InvalidRequest) as caught:
        await sdk.aembedding(f"anthropic/{MODEL}", "hi", api_base=fake.base_url, api_key=KEY)
    assert caught.value.param == "model"


# --------------------------------------------------------------------------- refused parameters

# param -> the request keyword arguments that set it
REFUSED: dict[str, dict[str, Any]] = {
    "n": {"n": 2},
    "seed": {"seed": 7},
    "temperature": {"temperature": 1.5},
    "presence_penalty": {"presence_penalty": 0.5},
    "frequency_penalty": {"frequency_penalty": 0.5},
    "logit_bias": {"logit_bias": {"1": 5}},
    "logprobs": {"logprobs": True},
    "top_logprobs": {"logprobs": True, "top_logprobs": 2},
    "response_format": {"response_format": {"type": "json_object"}},
    "audio": {"audio": {"voice": "alloy", "format": "wav"}},
    "modalities": {"modalities": ["text", "audio"]},
    "prediction": {"prediction": {"type": "content", "content": "x"}},
    "functions": {"functions": [{"name": "f", "parameters": {"type": "object"}}]},
    "function_call": {"function_call": "auto"},
    "store": {"store": True},
    "service_tier": {"service_tier": "flex"},
    "prompt_cache_key": {"prompt_cache_key": "k"},
    "verbosity": {"verbosity": "low"},
    "web_search_options": {"web_search_options": {}},
}


def test_every_refused_parameter_is_tested_and_documented():
    assert set(REFUSED) == set(REFUSED_PARAMS)
    docs = Path(__file__).resolve().parents[3] / "docs" / "providers" / "anthropic.md"
    table = docs.read_text()
    for param in REFUSED_PARAMS:
        assert f"| `{param}` | refused (400) unless drop_params |" in table, param


@pytest.mark.parametrize("param", sorted(REFUSED))
async def test_a_refused_parameter_is_a_400_naming_it(fake, param):
    with pytest.raises(errors.UnsupportedParams) as caught:
        await complete(fake, **REFUSED[param])
    assert caught.value.param == param and caught.value.http_status == 400
    assert "anthropic" in caught.value.message and "drop_params" in caught.value.message
    assert fake.request_count == 0


@pytest.mark.parametrize("param", sorted(REFUSED))
async def test_a_refused_parameter_is_dropped_with_drop_params(fake, param):
    response = await complete(fake, drop_params=True, **REFUSED[param])
    assert response.choices[0].message.content
    body = sent(fake)
    assert param not in body
    assert not {"output_config", "metadata", "temperature"} & set(body)


async def test_values_that_ask_for_nothing_pass(fake):
    await complete(fake, **NEUTRAL_VALUES, temperature=1)
    body = sent(fake)
    assert body["temperature"] == 1 and not set(NEUTRAL_VALUES) & set(body)


async def test_unknown_fields_are_refused_but_top_k_goes_through(fake):
    with pytest.raises(errors.UnsupportedParams) as caught:
        await complete(fake, extra_body={"repetition_penalty": 1.1})
    assert caught.value.param == "repetition_penalty"
    await complete(fake, drop_params=True, extra_body={"repetition_penalty": 1.1, "top_k": 5})
    body = sent(fake)
    assert body["top_k"] == 5 and "repetition_penalty" not in body


async def test_a_message_author_name_is_refused_unless_dropped(fake):
    named = [{"role": "user", "content": "Hi", "name": "alice"}]
    with pytest.raises(errors.UnsupportedParams) as caught:
        await complete(fake, messages=named)
    assert caught.value.param == "messages[0].name"
    await complete(fake, messages=named, drop_params=True)
    assert sent(fake)["messages"] == [{"role": "user", "content": "Hi"}]


async def test_a_json_schema_response_format_becomes_output_config(fake):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "City", "schema": schema}}
    await complete(fake, response_format=response_format)
    assert sent(fake)["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    await complete(fake, response_format={"type": "text"})
    assert "output_config" not in sent(fake)


async def test_safety_identifier_is_the_metadata_user_id(fake):
    await complete(fake, safety_identifier="hash-1", user="u-1")
    assert sent(fake)["metadata"] == {"user_id": "hash-1"}


# --------------------------------------------------------------------------- the shared examples

READ_SIZES = (1, 7, 13, 29, 64, 3, 101)  # odd sizes split lines and events across reads


def example(name: str) -> bytes:
    return wire_examples.example_bytes("anthropic", name)


async def translate(body: bytes) -> list[ChatCompletionChunk]:
    """The chunks the adapter makes of a recorded stream body, read in odd pieces."""

    async def reads() -> AsyncIterator[bytes]:
        offset = 0
        for size in itertools.cycle(READ_SIZES):
            if offset >= len(body):
                return
            yield body[offset : offset + size]
            offset += size

    translator = StreamTranslator(MODEL)
    chunks: list[ChatCompletionChunk] = []
    async for events in iter_sse(reads()):
        chunks.extend(translator.read(events))
    assert translator.done
    return chunks


def test_the_example_message_becomes_a_completion_with_signed_reasoning():
    response = parse_completion(example("message.json"), model=MODEL)
    message = response.choices[0].message
    assert message.content == "Paris is the capital of France."
    assert message.reasoning_content == "The user asks for the capital of France. That is Paris."
    assert message.thinking_blocks is not None
    assert message.thinking_blocks[0]["signature"].startswith("EqQBCgIYAhIM1gbcDa9")
    assert response.choices[0].finish_reason == "stop"
    usage = response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (2060, 2048, 41)


async def test_the_example_thinking_stream_translates_with_cache_writes():
    chunks = await translate(example("stream_text_thinking.sse"))
    response = stream_chunk_builder(chunks)
    message = response.choices[0].message
    assert message.content == "Hello! How can I help?"
    assert message.reasoning_content == "The user greets me. I should greet back."
    assert message.thinking_blocks == [
        {
            "type": "thinking",
            "thinking": "The user greets me. I should greet back.",
            "signature": "EqQBCgIYAhIMsig0nAtUrEbLoB5xGgzX7vQ2kLmNpQrStUvWxYz",
        }
    ]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.cache_write_tokens, usage.completion_tokens) == (
        14 + 1536,
        1536,
        27,
    )


async def test_the_example_tool_stream_indexes_the_call_among_tool_calls():
    chunks = await translate(example("stream_tool_use.sse"))
    deltas = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()]
    assert {d.index for d in deltas} == {0}  # Anthropic's block index is 1
    call = stream_chunk_builder(chunks).choices[0].message.tool_calls
    assert call is not None and call[0].id == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert json.loads(call[0].function.arguments) == {"city": "Paris", "unit": "celsius"}
    assert stream_chunk_builder(chunks).choices[0].finish_reason == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 472 + 89


async def test_the_example_error_event_is_service_unavailable():
    with pytest.raises(errors.ServiceUnavailable, match="Overloaded"):
        await translate(example("stream_error_overloaded.sse"))


@pytest.mark.parametrize(
    ("name", "status", "headers", "error_class"),
    [
        ("error_529_overloaded.json", 529, {}, errors.ServiceUnavailable),
        ("error_429_rate_limit.json", 429, {"retry-after": "12"}, errors.RateLimited),
        ("error_400_invalid_request.json", 400, {}, errors.InvalidRequest),
    ],
)
def test_the_example_error_bodies_map_to_their_classes(name, status, headers, error_class):
    error = error_from_response(status, headers, example(name), model=MODEL)
    assert type(error) is error_class and error.upstream_status == status
    assert error.message == json.loads(example(name))["error"]["message"]
    if headers:
        assert error.retry_after_s == 12
