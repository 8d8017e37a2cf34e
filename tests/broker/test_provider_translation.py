"""The native adapters (Anthropic, Gemini, Bedrock) translating both ways through the whole
service, driven by the official `openai` client (issue #7).

Each scenario checks what the client gets back and, where the translation is the point, what
the fake provider received (read back into one shape by `native_requests`): a conversation
with system text, an earlier exchange, tool calls and their results; images inline and by
URL; thinking asked for, returned as reasoning_content and sent back signed; cached prompt
tokens reported and priced at cache prices; every finish reason; every error class as the
openai exception and status a client of OpenAI itself would see. The scenarios run in-process
here and once more through `switchboard up` in `test_provider_conformance`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, NamedTuple

import openai
import pytest
from openai import AsyncOpenAI

from tests.broker.native_requests import (
    Call,
    Image,
    Result,
    Text,
    Thinking,
    Turn,
    cache_breakpoints,
    read_conversation,
    thinking_config,
)
from tests.broker.providers_setup import (
    HELLO,
    NATIVE_IDS,
    NATIVE_TARGETS,
    TIMEOUT_S,
    TOOLS,
    Group,
    Target,
    create,
    group_name,
    in_process,
    no_ambient_aws,  # noqa: F401 (an autouse fixture: importing it applies it here)
)
from workers import pricing
from workers.providers.gemini.generation import THINKING_BUDGETS
from workers.testing.media import PIXEL_PATH, PIXEL_PNG, PIXEL_PNG_BASE64
from workers.testing.server import FakeUpstream

SYSTEM = {"role": "system", "content": "You are terse."}
OPENING = [
    SYSTEM,
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Weather and time in Paris?"},
]
TOOL_RESULTS = {"get_weather": {"temp_c": 21}, "get_time": {"time": "12:00"}}
LONG_TEXT = "Summarise this. " + "The quick brown fox jumps over the lazy dog. " * 20
CACHED_TOKENS = 64
REASONING_TOKENS = 24
CACHED = f"~cached={CACHED_TOKENS}"
REASONING = f"~reasoning={REASONING_TOKENS}"
# reasoning_effort="low" in each provider's words.
THINKING_SENT = {
    "anthropic": {"type": "enabled", "budget_tokens": 1024},
    "bedrock": {"type": "enabled", "budget_tokens": 1024},
    "gemini": {"thinkingBudget": THINKING_BUDGETS["low"], "includeThoughts": True},
}
STOP_AT = {"stop": ["reply"]}
ONE_TOOL = {"tools": TOOLS[:1]}
# provider -> (directives, request arguments, finish_reason), plain and streamed alike.
FINISHES: dict[str, list[tuple[str, dict[str, Any], str]]] = {
    "anthropic": [
        ("", {}, "stop"),
        ("", STOP_AT, "stop"),  # stop_reason stop_sequence
        ("~stop_reason=pause_turn", {}, "stop"),
        ("~length", {}, "length"),
        ("~stop_reason=model_context_window_exceeded", {}, "length"),
        ("~tools=1", ONE_TOOL, "tool_calls"),
        ("~stop_reason=refusal", {}, "content_filter"),
    ],
    "gemini": [
        ("", {}, "stop"),
        ("~length", {}, "length"),
        ("~tools=1", ONE_TOOL, "tool_calls"),
        ("~finish=SAFETY", {}, "content_filter"),
        ("~finish=RECITATION", {}, "content_filter"),
        ("~finish=PROHIBITED_CONTENT", {}, "content_filter"),
    ],
    "bedrock": [
        ("", {}, "stop"),
        ("~stop_reason=stop_sequence", {}, "stop"),
        ("~length", {}, "length"),
        ("~stop_reason=model_context_window_exceeded", {}, "length"),
        ("~tools=1", ONE_TOOL, "tool_calls"),
        ("~stop_reason=guardrail_intervened", {}, "content_filter"),
        ("~stop_reason=content_filtered", {}, "content_filter"),
    ],
}
# Finishes that mean the model produced nothing usable: a retryable 502, never a `stop`.
FAILED_FINISHES: dict[str, list[str]] = {
    "anthropic": [],
    "gemini": ["~finish=MALFORMED_FUNCTION_CALL", "~finish=OTHER"],
    "bedrock": ["~stop_reason=malformed_tool_use", "~stop_reason=malformed_model_output"],
}


class ErrorCase(NamedTuple):
    directives: str
    error: type[openai.APIStatusError]  # exactly this class, as the openai client picks it
    status: int
    code: str | None = None


HANG = "~hang"
HANG_PARAMS = {"timeout": 0.3, "stream_timeout": 0.3}
COMMON_ERRORS = [
    ErrorCase("~status=400", openai.BadRequestError, 400),
    ErrorCase("~status=context_window", openai.BadRequestError, 400, "context_length_exceeded"),
    ErrorCase("~status=content_filter", openai.BadRequestError, 400, "content_policy_violation"),
    # The gateway's credentials failed, not the caller's: a 502 naming the deployment.
    ErrorCase("~status=401", openai.InternalServerError, 502, "upstream_auth_failed"),
    ErrorCase("~status=403", openai.InternalServerError, 502, "upstream_auth_failed"),
    ErrorCase("~status=404", openai.NotFoundError, 404, "model_not_found"),
    ErrorCase("~status=429", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ErrorCase("~status=500", openai.InternalServerError, 500),
    # The upstream did not answer within the deployment's timeout.
    ErrorCase(HANG, openai.APIStatusError, 408, "timeout"),
]
ERRORS: dict[str, list[ErrorCase]] = {
    "anthropic": [
        *COMMON_ERRORS,
        ErrorCase("~status=402", openai.RateLimitError, 429, "insufficient_quota"),
        ErrorCase("~status=413", openai.APIStatusError, 413, "request_too_large"),
        ErrorCase("~status=504", openai.InternalServerError, 502),
        ErrorCase("~status=529", openai.InternalServerError, 503, "service_unavailable"),
    ],
    "gemini": [
        *COMMON_ERRORS,
        ErrorCase("~status=503", openai.InternalServerError, 503, "service_unavailable"),
        ErrorCase("~status=504", openai.InternalServerError, 502),
    ],
    "bedrock": [
        *COMMON_ERRORS,
        ErrorCase(
            "~error=ExpiredTokenException", openai.InternalServerError, 502, "upstream_auth_failed"
        ),
        ErrorCase("~status=408", openai.APIStatusError, 408, "timeout"),
        ErrorCase(
            "~error=ServiceQuotaExceededException",
            openai.RateLimitError,
            429,
            "insufficient_quota",
        ),
        ErrorCase("~status=424", openai.InternalServerError, 502),
        ErrorCase("~error=ModelNotReadyException", openai.InternalServerError, 503),
        ErrorCase("~status=503", openai.InternalServerError, 503, "service_unavailable"),
    ],
}

# After the first chunks the status is sent: the error event names the class by type and code.
# (Anthropic's fake sends overloaded_error, Gemini's a 500 INTERNAL, Bedrock's the exception.)
AFTER_CHUNKS = "~stream_error_after=2~chunk_delay=0.05"
MID_STREAM_ERRORS: dict[str, list[tuple[str, str, str]]] = {
    "anthropic": [(AFTER_CHUNKS, "service_unavailable_error", "service_unavailable")],
    "gemini": [(AFTER_CHUNKS, "api_error", "provider_error")],
    "bedrock": [
        (AFTER_CHUNKS, "api_error", "provider_error"),
        (
            AFTER_CHUNKS + "~exception=throttlingException",
            "rate_limit_error",
            "rate_limit_exceeded",
        ),
        (
            AFTER_CHUNKS + "~exception=validationException",
            "invalid_request_error",
            "context_length_exceeded",
        ),
        (
            AFTER_CHUNKS + "~exception=serviceUnavailableException",
            "service_unavailable_error",
            "service_unavailable",
        ),
    ],
}


def translation_groups() -> list[Group]:
    """A model group for every (native provider, directives) the scenarios below use."""
    groups: list[Group] = []
    for target in NATIVE_TARGETS:
        provider = target.provider
        directives = {"", "~tools=2", REASONING, CACHED}
        directives.update(d for d, _, _ in FINISHES[provider])
        directives.update(FAILED_FINISHES[provider])
        directives.update(case.directives for case in ERRORS[provider])
        directives.update(d for d, _, _ in MID_STREAM_ERRORS[provider])
        for d in sorted(directives):
            params = HANG_PARAMS if d == HANG else {}
            groups.append(Group(group_name(target, d), target, d, params))
    return groups


GROUPS = translation_groups()


def last_conversation(fake: FakeUpstream, target: Target) -> Any:
    return read_conversation(target.provider, fake.requests[-1].json)


def extra(model: Any, name: str) -> Any:
    """A field the openai types do not declare (reasoning_content, thinking_blocks...)."""
    return (model.model_extra or {}).get(name)


# ---------------------------------------------------------------------------------- scenarios


async def check_conversation_with_tool_results(
    client: AsyncOpenAI, fake: FakeUpstream, target: Target
) -> None:
    """System text, an earlier exchange, the service's own tool calls and their results."""
    first = await create(client, group_name(target, "~tools=2"), messages=OPENING, tools=TOOLS)
    assistant = first.choices[0].message
    calls = assistant.tool_calls
    results = [
        {"role": "tool", "tool_call_id": c.id, "content": json.dumps(TOOL_RESULTS[c.function.name])}
        for c in calls
    ]
    history = [*OPENING, assistant.model_dump(exclude_none=True), *results]
    answer = await create(client, group_name(target, ""), messages=history, tools=TOOLS)
    assert answer.choices[0].message.content == target.reply_text
    assert answer.choices[0].finish_reason == "stop"

    sent = last_conversation(fake, target)
    assert sent.system == ["You are terse."]
    assert sent.roles == ["user", "assistant", "user", "assistant", "user"]
    assert sent.turns[:3] == [
        Turn("user", [Text("Hi")]),
        Turn("assistant", [Text("Hello! How can I help?")]),
        Turn("user", [Text("Weather and time in Paris?")]),
    ]
    sent_calls = [item for item in sent.turns[3].items if isinstance(item, Call)]
    assert [(c.name, c.arguments) for c in sent_calls] == [
        (c.function.name, json.loads(c.function.arguments)) for c in calls
    ]
    if target.provider == "gemini":
        # Gemini matches results by function name; the call's thoughtSignature rode in its id.
        assert sent_calls[0].signature
        refs = [c.function.name for c in calls]
    else:
        assert [c.id for c in sent_calls] == [c.id for c in calls]
        refs = [c.id for c in calls]
    expected = [TOOL_RESULTS[c.function.name] for c in calls]
    assert sent.turns[4].items == [Result(r, v) for r, v in zip(refs, expected, strict=True)]


async def check_images(client: AsyncOpenAI, fake: FakeUpstream, target: Target) -> None:
    url = fake.base_url + PIXEL_PATH
    # Anthropic fetches URLs itself; Gemini and Bedrock take bytes, which the adapter fetches.
    by_url = (
        Image("", None, url) if target.provider == "anthropic" else Image("image/png", PIXEL_PNG)
    )
    for image_url, expected in (
        (f"data:image/png;base64,{PIXEL_PNG_BASE64}", Image("image/png", PIXEL_PNG)),
        (url, by_url),
    ):
        question = {"type": "text", "text": "What is in this picture?"}
        image = {"type": "image_url", "image_url": {"url": image_url}}
        messages = [{"role": "user", "content": [question, image]}]
        answer = await create(client, group_name(target, ""), messages=messages)
        assert answer.choices[0].message.content == target.reply_text
        sent = last_conversation(fake, target)
        assert sent.turns == [Turn("user", [Text("What is in this picture?"), expected])]


def reasoning_tokens(target: Target, usage: Any) -> int:
    if target.provider == "bedrock":
        # Converse counts thinking in outputTokens and reports no split.
        assert usage.completion_tokens_details.reasoning_tokens == 0
        return REASONING_TOKENS if usage.completion_tokens > REASONING_TOKENS else 0
    tokens: int = usage.completion_tokens_details.reasoning_tokens
    return tokens


async def check_thinking(client: AsyncOpenAI, fake: FakeUpstream, target: Target) -> None:
    """Thinking asked for by reasoning_effort, in a conversation with tools (where Gemini signs
    its text too), returned plain and streamed, and sent back signed on the next turn."""
    group = group_name(target, REASONING)
    response = await create(client, group, reasoning_effort="low", tools=TOOLS)
    sent_config = thinking_config(target.provider, fake.requests[-1].json)
    assert sent_config == THINKING_SENT[target.provider]
    message = response.choices[0].message
    reasoning = extra(message, "reasoning_content")
    assert reasoning and message.content == target.reply_text
    assert reasoning_tokens(target, response.usage) == REASONING_TOKENS
    [block] = extra(message, "thinking_blocks")

    chunks = await create(
        client,
        group,
        reasoning_effort="low",
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(extra(d, "reasoning_content") or "" for d in deltas) == reasoning
    assert "".join(d.content or "" for d in deltas) == target.reply_text
    assert reasoning_tokens(target, chunks[-1].usage) == REASONING_TOKENS
    [streamed_block] = [b for d in deltas for b in extra(d, "thinking_blocks") or ()]
    assert streamed_block.keys() == block.keys() and streamed_block["signature"]

    next_turn = {"role": "user", "content": "Thanks"}
    history = [*HELLO, message.model_dump(exclude_none=True), next_turn]
    await create(client, group, messages=history, reasoning_effort="low", tools=TOOLS)
    answer = last_conversation(fake, target).turns[1]
    if target.provider == "gemini":
        # A thought signature, not thinking: it goes back on the text it signed.
        assert block["type"] == "thought_signature"
        assert answer.items == [Text(target.reply_text, block["signature"])]
    else:
        # The signed block goes back unchanged, before the answer's text.
        assert block["type"] == "thinking" and block["thinking"] == reasoning
        assert answer.items == [
            Thinking(block["thinking"], block["signature"]),
            Text(target.reply_text),
        ]


def expected_cost(target: Target, usage: Any) -> float:
    """The dollars the price table says this usage costs, cache reads and writes apart."""
    price = pricing.lookup_price(target.provider, target.base_model)
    assert price is not None and price.cache_read_input_token_cost is not None
    assert price.cache_read_input_token_cost < price.input_cost_per_token
    details = usage.prompt_tokens_details
    read = details.cached_tokens or 0
    written = details.cache_write_tokens or 0
    write_price = price.cache_creation_input_token_cost or price.input_cost_per_token
    assert price.output_cost_per_token is not None
    return float(
        (usage.prompt_tokens - read - written) * price.input_cost_per_token
        + read * price.cache_read_input_token_cost
        + written * write_price
        + usage.completion_tokens * price.output_cost_per_token
    )


async def check_cached_usage_and_cost(
    client: AsyncOpenAI, fake: FakeUpstream, target: Target
) -> None:
    # Plain dicts, with Anthropic's cache_control, which the openai client's types do not know.
    messages: list[Any] = [{"role": "user", "content": LONG_TEXT}]
    group = group_name(target, CACHED)
    raw = await client.chat.completions.with_raw_response.create(model=group, messages=messages)
    # Our usage carries cache_write_tokens, an extra field the openai client's model lacks.
    usage: Any = raw.parse().usage
    assert usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    assert usage.prompt_tokens > CACHED_TOKENS
    cost = float(raw.headers["x-switchboard-cost-usd"])
    assert cost == pytest.approx(expected_cost(target, usage), abs=1e-9)

    chunks = await create(
        client, group, messages=messages, stream=True, stream_options={"include_usage": True}
    )
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == CACHED_TOKENS
    assert chunks[-1].usage.prompt_tokens == usage.prompt_tokens
    if target.provider == "gemini":
        return  # Gemini caches implicitly: no breakpoints, no cache writes

    # A breakpoint on the system text: a first request writes the cache, at the write price.
    system = {"type": "text", "text": LONG_TEXT, "cache_control": {"type": "ephemeral"}}
    messages = [{"role": "system", "content": [system]}, *HELLO]
    raw = await client.chat.completions.with_raw_response.create(
        model=group_name(target, ""), messages=messages
    )
    assert cache_breakpoints(target.provider, fake.requests[-1].json) == 1
    usage = raw.parse().usage
    assert usage.prompt_tokens_details.cache_write_tokens > 0
    cost = float(raw.headers["x-switchboard-cost-usd"])
    assert cost == pytest.approx(expected_cost(target, usage), abs=1e-9)


async def check_finish_reasons(client: AsyncOpenAI, fake: FakeUpstream, target: Target) -> None:
    for directives, kwargs, finish in FINISHES[target.provider]:
        group = group_name(target, directives)
        response = await create(client, group, **kwargs)
        assert response.choices[0].finish_reason == finish, directives
        chunks = await create(client, group, stream=True, **kwargs)
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
        assert [f for f in finishes if f] == [finish], directives
    for directives in FAILED_FINISHES[target.provider]:
        group = group_name(target, directives)
        with pytest.raises(openai.InternalServerError) as caught:
            await create(client, group)
        assert caught.value.status_code == 502, directives
        # Streamed, the failure shows at the end: as an error event, or a 502 if nothing left.
        with pytest.raises(openai.APIError):
            await create(client, group, stream=True)


async def check_error_classes(client: AsyncOpenAI, fake: FakeUpstream, target: Target) -> None:
    for case in ERRORS[target.provider]:
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as caught:
                await create(client, group_name(target, case.directives), stream=stream)
            error = caught.value
            seen = (type(error).__name__, error.status_code)
            assert seen == (case.error.__name__, case.status), (case.directives, stream)
            if case.code is not None:
                assert isinstance(error.body, dict) and error.body["code"] == case.code, case


async def check_mid_stream_error_classes(
    client: AsyncOpenAI, fake: FakeUpstream, target: Target
) -> None:
    for directives, error_type, code in MID_STREAM_ERRORS[target.provider]:
        stream = await client.chat.completions.create(
            model=group_name(target, directives), messages=HELLO, stream=True
        )
        text = ""
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                text += "".join(c.delta.content or "" for c in chunk.choices)
        assert text and not isinstance(caught.value, openai.APIStatusError), directives
        body = caught.value.body
        assert isinstance(body, dict) and (body["type"], body["code"]) == (error_type, code)


NATIVE_CHECKS = (
    check_conversation_with_tool_results,
    check_images,
    check_thinking,
    check_cached_usage_and_cost,
    check_finish_reasons,
    check_error_classes,
    check_mid_stream_error_classes,
)


# ---------------------------------------------------------------------------------- in-process


@pytest.mark.parametrize("target", NATIVE_TARGETS, ids=NATIVE_IDS)
async def test_a_conversation_with_system_tool_calls_and_results_round_trips(
    fake, namespace, target
):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_conversation_with_tool_results(client, fake, target)


@pytest.mark.parametrize("target", NATIVE_TARGETS, ids=NATIVE_IDS)
async def test_images_reach_the_provider_inline_or_by_url(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_images(client, fake, target)


@pytest.mark.parametrize("target", NATIVE_TARGETS, ids=NATIVE_IDS)
async def test_thinking_returns_reasoning_content_and_goes_back_signed(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_thinking(client, fake, target)


@pytest.mark.parametrize("target", NATIVE_TARGETS, ids=NATIVE_IDS)
async def test_cached_prompt_tokens_are_reported_and_priced_at_cache_prices(
    fake, namespace, target
):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_cached_usage_and_cost(client, fake, target)


@pytest.mark.parametrize("target", NATIVE_TARGETS, ids=NATIVE_IDS)
async def test_every_finish_reason_reaches_the_client(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_finish_reasons(client, fake, target)


@pytest.mark.parametrize("target", NATIVE_TARGETS, ids=NATIVE_IDS)
async def test_every_upstream_error_is_the_openai_exception_for_its_status(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_error_classes(client, fake, target)


@pytest.mark.parametrize("target", NATIVE_TARGETS, ids=NATIVE_IDS)
async def test_an_error_after_the_first_chunks_names_its_class_in_the_error_event(
    fake, namespace, target
):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_mid_stream_error_classes(client, fake, target)
