"""The Gemini adapter both ways, through the in-process SDK against the fake Gemini API
(issue #7): what the fake received is the native request, what the SDK returns is OpenAI's."""

from __future__ import annotations

import array
import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.wire_examples import example_path
from workers.deployment import Deployment, Secret
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
from workers.providers.base import ChatCall
from workers.providers.gemini import GeminiAdapter
from workers.providers.gemini.errors import error_from_response
from workers.providers.gemini.refusals import CONDITIONAL, REFUSED
from workers.providers.gemini.response import to_completion
from workers.providers.gemini.stream import StreamReader
from workers.providers.gemini.wire import decode_response
from workers.providers.sse_reader import SSEDecoder
from workers.sdk import calls as sdk
from workers.sdk.assemble import stream_chunk_builder
from workers.sdk.stream import ChatStream
from workers.testing import FakeUpstream
from workers.testing.embedding import embedding_vector
from workers.testing.gemini_errors import NO_KEY_MESSAGE, status_body
from workers.testing.gemini_render import THOUGHT_TEXT
from workers.testing.tokens import count_tokens
from workers.wire import ChatCompletion, ChatCompletionChunk, chat_request_from_dict

MODEL = "gemini-2.5-flash"
KEY = "gm-test-key"
TIMEOUT_S = 10
HI = [{"role": "user", "content": "Capital of France?"}]
HI_CONTENTS = [{"role": "user", "parts": [{"text": "Capital of France?"}]}]
TEXT = f"This is a fake reply from {MODEL}."
TEXT_TOKENS = count_tokens(TEXT)
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


async def complete(fake: FakeUpstream, model: str, messages: Any = HI, **kwargs: Any) -> Any:
    kwargs.setdefault("api_base", fake.base_url)
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("environ", {})
    async with asyncio.timeout(TIMEOUT_S):
        return await sdk.acompletion(f"gemini/{model}", messages, **kwargs)


async def collect(fake: FakeUpstream, model: str, messages: Any = HI, **kwargs: Any) -> Any:
    stream = await complete(fake, model, messages, stream=True, **kwargs)
    assert isinstance(stream, ChatStream)
    async with asyncio.timeout(TIMEOUT_S):
        return [chunk async for chunk in stream]


async def collect_until_error(
    fake: FakeUpstream, model: str, **kwargs: Any
) -> tuple[list[ChatCompletionChunk], SwitchboardError]:
    chunks: list[ChatCompletionChunk] = []
    with pytest.raises(SwitchboardError) as caught:
        stream = await complete(fake, model, stream=True, **kwargs)
        async with asyncio.timeout(TIMEOUT_S):
            async for chunk in stream:
                chunks.append(chunk)
    return chunks, caught.value


def sent(fake: FakeUpstream) -> Any:
    return fake.requests[-1].json


def text_of(chunks: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --------------------------------------------------------------------------- text


async def test_text_answer_has_content_finish_usage_and_a_plain_native_request(fake):
    response = await complete(fake, MODEL)
    assert isinstance(response, ChatCompletion)
    choice = response.choices[0]
    assert (choice.message.content, choice.finish_reason) == (TEXT, "stop")
    assert response.model == MODEL and response.id
    usage = response.usage
    assert usage is not None
    assert (usage.completion_tokens, usage.total_tokens) == (
        TEXT_TOKENS,
        usage.prompt_tokens + TEXT_TOKENS,
    )
    request = fake.requests[-1]
    assert request.path == f"/v1beta/models/{MODEL}:generateContent"
    assert request.headers["x-goog-api-key"] == KEY and "key" not in request.query
    assert request.json == {"contents": HI_CONTENTS}


async def test_representative_request_is_translated_field_for_field(fake):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    await complete(
        fake,
        MODEL,
        messages,
        temperature=0.2,
        top_p=0.9,
        max_completion_tokens=256,
        stop=["END"],
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}},
        },
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        reasoning_effort="low",
        service_tier="flex",
        top_k=40,
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
        cached_content="cachedContents/abc123",
    )
    assert sent(fake) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
        "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather in a city",
                        "parametersJsonSchema": WEATHER["function"]["parameters"],
                    },
                    {"name": "get_time", "parametersJsonSchema": {"type": "object"}},
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "topK": 40,
            "maxOutputTokens": 256,
            "stopSequences": ["END"],
            "seed": 7,
            "presencePenalty": 0.1,
            "frequencyPenalty": 0.2,
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"},
            "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
        },
        "safetySettings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
        ],
        "cachedContent": "cachedContents/abc123",
        "serviceTier": "flex",
    }


async def test_json_object_format_and_consecutive_turns_of_one_role(fake):
    messages = [
        {"role": "user", "content": "One."},
        {"role": "user", "content": "Two."},
        {"role": "assistant", "content": "Three."},
        {"role": "user", "content": "Four."},
    ]
    await complete(fake, MODEL, messages, response_format={"type": "json_object"}, max_tokens=9)
    body = sent(fake)
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "One."}, {"text": "Two."}]},
        {"role": "model", "parts": [{"text": "Three."}]},
        {"role": "user", "parts": [{"text": "Four."}]},
    ]
    assert body["generationConfig"] == {
        "maxOutputTokens": 9,
        "responseMimeType": "application/json",
    }


async def test_text_stream_has_role_then_content_then_finish_then_usage(fake):
    chunks = await collect(fake, MODEL, stream_options={"include_usage": True})
    request = fake.requests[-1]
    assert request.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert request.query["alt"] == "sse"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert text_of(chunks) == TEXT
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == TEXT_TOKENS
    assert len({c.id for c in chunks}) == 1


async def test_stream_without_include_usage_still_knows_usage_and_cost(fake):
    stream = await complete(fake, MODEL, stream=True, base_model=MODEL)
    async with asyncio.timeout(TIMEOUT_S):
        chunks = [chunk async for chunk in stream]
    assert all(chunk.choices for chunk in chunks)
    assert stream.usage.completion_tokens == TEXT_TOKENS
    assert stream.hidden_params["cost_usd"] > 0


async def test_n_gives_that_many_choices(fake):
    response = await complete(fake, MODEL, n=2)
    assert [c.index for c in response.choices] == [0, 1]
    assert sent(fake)["generationConfig"] == {"candidateCount": 2}


async def test_logprobs_map_to_openai_token_logprobs(fake):
    response = await complete(fake, f"{MODEL}~chunks=2", logprobs=True, top_logprobs=2)
    assert sent(fake)["generationConfig"] == {"responseLogprobs": True, "logprobs": 2}
    content = response.choices[0].logprobs["content"]
    assert "".join(step["token"] for step in content) == TEXT
    assert [len(step["top_logprobs"]) for step in content] == [2, 2]
    assert content[0]["bytes"] == list(content[0]["token"].encode())
    chunks = await collect(fake, f"{MODEL}~chunks=2", logprobs=True, top_logprobs=1)
    assert [len(c.choices[0].logprobs["content"]) for c in chunks if c.choices] == [1, 1]


# --------------------------------------------------------------------------- tools


async def test_tool_calls_come_with_ids_json_arguments_and_a_signature(fake):
    response = await complete(fake, f"{MODEL}~tools=2", tools=[WEATHER])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert [json.loads(c.function.arguments)["call"] for c in calls] == [0, 1]
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert calls[0].id != calls[1].id and all(c.id.startswith("call_") for c in calls)
    # Gemini signs the first of parallel calls; the signature rides in that call's id.
    assert "__thought__" in calls[0].id and "__thought__" not in calls[1].id
    assert all(c.id.replace("-", "").replace("_", "").isalnum() for c in calls)


async def test_streamed_tool_calls_are_one_whole_delta_each(fake):
    chunks = await collect(fake, f"{MODEL}~tools=2", tools=[WEATHER])
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert [d.index for d in deltas] == [0, 1]
    assert all(d.id and d.type == "function" and d.function.name for d in deltas)
    assert [json.loads(d.function.arguments)["call"] for d in deltas] == [0, 1]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    rebuilt = stream_chunk_builder(chunks).choices[0].message.tool_calls
    assert rebuilt is not None
    assert [c.id for c in rebuilt] == [d.id for d in deltas]


def test_streamed_and_plain_forms_of_one_answer_give_the_same_call_ids():
    raw = example_path("gemini", "stream_function_call.sse").read_bytes()
    reader = StreamReader(MODEL)
    chunks = reader.read(SSEDecoder().feed(raw)) + reader.finish()
    streamed = stream_chunk_builder(chunks).choices[0].message
    data = raw.decode().split("data: ", 1)[1].strip().encode()
    plain = to_completion(decode_response(data), model=MODEL).choices[0].message
    assert streamed.tool_calls == plain.tool_calls
    assert plain.tool_calls is not None
    assert json.loads(plain.tool_calls[0].function.arguments) == {
        "city": "Paris",
        "unit": "celsius",
    }
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 20 + 48


async def test_tool_results_go_back_by_name_with_the_signatures_gemini_3_needs(fake):
    model = "gemini-3-pro-preview~tools=2"
    first = await complete(fake, model, tools=[WEATHER, TIME])
    message = first.choices[0].message
    calls = message.tool_calls
    history = [
        *HI,
        message.model_dump(),
        {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp_c": 18}'},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "12:00"},
    ]
    second = await complete(fake, model, history, tools=[WEATHER, TIME])
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content
    contents = sent(fake)["contents"]
    model_turn, results = contents[1], contents[2]
    assert model_turn["role"] == "model"
    assert [p["functionCall"]["name"] for p in model_turn["parts"]] == ["get_weather", "get_time"]
    assert model_turn["parts"][0]["functionCall"]["args"] == json.loads(calls[0].function.arguments)
    assert (
        model_turn["parts"][0]["thoughtSignature"]
        and "thoughtSignature" not in model_turn["parts"][1]
    )
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp_c": 18}}},
            {"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}},
        ],
    }


async def test_a_history_that_lost_its_signature_is_refused_by_gemini_3(fake):
    history = [
        *HI,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    with pytest.raises(InvalidRequest, match="thought_signature"):
        await complete(fake, "gemini-3-pro-preview", history, tools=[WEATHER])
    await complete(fake, MODEL, history, tools=[WEATHER])  # 2.5 models are lenient


@pytest.mark.parametrize(
    ("history", "param"),
    [
        (
            [*HI, {"role": "tool", "tool_call_id": "call_x", "content": "1"}],
            "messages[1].tool_call_id",
        ),
        (
            [
                *HI,
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{oops"},
                        }
                    ],
                },
            ],
            "messages[1].tool_calls[0].function.arguments",
        ),
    ],
)
async def test_tool_history_gemini_cannot_match_is_a_400(fake, history, param):
    with pytest.raises(InvalidRequest) as caught:
        await complete(fake, MODEL, history, tools=[WEATHER])
    assert caught.value.param == param
    assert fake.request_count == 0


@pytest.mark.parametrize(
    ("tool_choice", "strict", "config"),
    [
        ("auto", False, {"mode": "AUTO"}),
        ("required", False, {"mode": "ANY"}),
        ("none", False, {"mode": "NONE"}),
        (None, False, None),
        (None, True, {"mode": "VALIDATED"}),
        ("auto", True, {"mode": "VALIDATED"}),
    ],
)
async def test_tool_choice_becomes_a_function_calling_mode(fake, tool_choice, strict, config):
    tool = {"type": "function", "function": {**WEATHER["function"], "strict": strict}}
    await complete(fake, MODEL, tools=[tool], tool_choice=tool_choice)
    expected = {"functionCallingConfig": config} if config else None
    assert sent(fake).get("toolConfig") == expected


# --------------------------------------------------------------------------- media


@pytest.fixture
async def images() -> AsyncIterator[str]:
    """A tiny web server with one image and one missing one."""

    async def cat(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", cat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


# The image server listens on loopback, which only an operator's allow list opens.
LOOPBACK_MEDIA = {"allow_networks": ["127.0.0.1/32"]}


def with_image(url: str, **part: Any) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": url, **part}},
            ],
        }
    ]


async def test_data_uri_images_are_inlined(fake):
    data = base64.b64encode(PNG).decode()
    await complete(fake, MODEL, with_image(f"data:image/png;base64,{data}"))
    assert sent(fake)["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": data}},
    ]


async def test_http_images_are_fetched_and_inlined(fake, images):
    image = with_image(f"{images}/cat.png", detail="auto")
    await complete(fake, MODEL, image, media_fetch=LOOPBACK_MEDIA)
    part = sent(fake)["contents"][0]["parts"][1]
    assert part == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}


async def test_an_image_that_cannot_be_fetched_is_a_400_naming_it(fake, images):
    with pytest.raises(InvalidRequest) as caught:
        await complete(fake, MODEL, with_image(f"{images}/missing.png"), media_fetch=LOOPBACK_MEDIA)
    assert caught.value.param == "messages[0].content[1].image_url"
    assert caught.value.code == "invalid_image_url"
    assert caught.value.message == (
        "messages[0].content[1].image_url could not be fetched: HTTP 404"
    )
    assert fake.request_count == 0


async def test_audio_and_pdf_parts_are_inlined(fake):
    pdf = base64.b64encode(b"%PDF-1.4").decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{pdf}"}},
            ],
        }
    ]
    await complete(fake, MODEL, messages)
    assert sent(fake)["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": pdf}},
    ]


# --------------------------------------------------------------------------- thinking


@pytest.mark.parametrize(
    ("effort", "budget"),
    [("minimal", 512), ("low", 1024), ("medium", 8192), ("high", 24576)],
)
async def test_reasoning_effort_sets_a_budget_and_thoughts_come_back(fake, effort, budget):
    response = await complete(fake, f"{MODEL}~reasoning=30", reasoning_effort=effort)
    config = sent(fake)["generationConfig"]["thinkingConfig"]
    assert config == {"thinkingBudget": budget, "includeThoughts": True}
    message = response.choices[0].message
    assert (message.reasoning_content, message.content) == (THOUGHT_TEXT, TEXT)
    assert response.usage.reasoning_tokens == 30
    assert response.usage.completion_tokens == TEXT_TOKENS + 30


async def test_reasoning_effort_none_turns_thinking_off_on_2_5(fake):
    response = await complete(fake, f"{MODEL}~reasoning=30", reasoning_effort="none")
    assert sent(fake)["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    assert response.choices[0].message.reasoning_content is None


@pytest.mark.parametrize(("effort", "level"), [("low", "LOW"), ("high", "HIGH")])
async def test_gemini_3_gets_a_thinking_level(fake, effort, level):
    await complete(fake, "gemini-3-pro-preview", reasoning_effort=effort)
    config = sent(fake)["generationConfig"]["thinkingConfig"]
    assert config == {"thinkingLevel": level, "includeThoughts": True}


@pytest.mark.parametrize(
    ("thinking", "config"),
    [
        (
            {"type": "enabled", "budget_tokens": 2048},
            {"thinkingBudget": 2048, "includeThoughts": True},
        ),
        ({"type": "adaptive"}, {"thinkingBudget": -1, "includeThoughts": True}),
        ({"type": "disabled"}, {"thinkingBudget": 0}),
    ],
)
async def test_the_thinking_param_sets_the_budget(fake, thinking, config):
    await complete(fake, MODEL, thinking=thinking)
    assert sent(fake)["generationConfig"]["thinkingConfig"] == config


@pytest.mark.parametrize(
    ("params", "param"),
    [
        (
            {"reasoning_effort": "low", "thinking": {"type": "enabled", "budget_tokens": 9}},
            "thinking",
        ),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"thinking": {"type": "enabled"}}, "thinking"),
    ],
)
async def test_thinking_settings_gemini_cannot_read_are_a_400(fake, params, param):
    with pytest.raises(InvalidRequest) as caught:
        await complete(fake, MODEL, **params)
    assert caught.value.param == param


async def test_streamed_thoughts_arrive_as_reasoning_before_content(fake):
    chunks = await collect(fake, f"{MODEL}~reasoning=12", reasoning_effort="medium")
    reasoning = [
        i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.reasoning_content
    ]
    content = [i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content]
    assert reasoning == [0] and content and content[0] > 0
    assert stream_chunk_builder(chunks).choices[0].message.reasoning_content == THOUGHT_TEXT


async def test_a_signed_text_answer_sends_its_signature_back_next_turn(fake):
    first = await complete(fake, f"{MODEL}~reasoning=8", tools=[WEATHER])
    message = first.choices[0].message
    assert message.thinking_blocks[0]["type"] == "thought_signature"
    history = [*HI, message.model_dump(), {"role": "user", "content": "And tomorrow?"}]
    await complete(fake, MODEL, history, tools=[WEATHER])
    model_turn = sent(fake)["contents"][1]
    assert model_turn == {
        "role": "model",
        "parts": [{"text": TEXT, "thoughtSignature": message.thinking_blocks[0]["signature"]}],
    }


# --------------------------------------------------------------------------- usage and cost


async def test_cached_and_thinking_usage_is_normalised_and_priced(fake):
    model = f"{MODEL}~cached=2048~reasoning=52"
    response = await complete(fake, model, base_model=MODEL)
    usage = response.usage
    assert (usage.prompt_tokens, usage.cached_tokens) == (2048, 2048)
    assert (usage.completion_tokens, usage.reasoning_tokens) == (TEXT_TOKENS + 52, 52)
    assert usage.total_tokens == 2048 + TEXT_TOKENS + 52
    expected = 2048 * 3e-08 + (TEXT_TOKENS + 52) * 2.5e-06
    assert response.hidden_params["cost_usd"] == pytest.approx(expected)
    stream = await complete(fake, model, stream=True, base_model=MODEL)
    async with asyncio.timeout(TIMEOUT_S):
        _ = [chunk async for chunk in stream]
    assert stream.usage == usage
    assert stream.hidden_params["cost_usd"] == pytest.approx(expected)


# --------------------------------------------------------------------------- finish reasons


@pytest.mark.parametrize(
    ("directives", "finish_reason"),
    [
        ("", "stop"),
        ("~length", "length"),
        ("~tools=1", "tool_calls"),
        *[
            (f"~finish={reason}", "content_filter")
            for reason in (
                "SAFETY",
                "RECITATION",
                "LANGUAGE",
                "BLOCKLIST",
                "PROHIBITED_CONTENT",
                "SPII",
                "IMAGE_SAFETY",
                "IMAGE_OTHER",
            )
        ],
    ],
)
async def test_finish_reasons_map_plain_and_streamed(fake, directives, finish_reason):
    response = await complete(fake, MODEL + directives, tools=[WEATHER])
    assert response.choices[0].finish_reason == finish_reason
    chunks = await collect(fake, MODEL + directives, tools=[WEATHER])
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == finish_reason and not any(finishes[:-1])


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("MALFORMED_FUNCTION_CALL", ProviderError),
        ("UNEXPECTED_TOOL_CALL", ProviderError),
        ("TOO_MANY_TOOL_CALLS", ProviderError),
        ("MALFORMED_RESPONSE", ProviderError),
        ("NO_IMAGE", ProviderError),
        ("OTHER", ProviderError),
        ("FINISH_REASON_UNSPECIFIED", ProviderError),
        ("MISSING_THOUGHT_SIGNATURE", InvalidRequest),
    ],
)
async def test_finishes_without_an_answer_are_errors(fake, reason, error):
    with pytest.raises(error) as caught:
        await complete(fake, f"{MODEL}~finish={reason}")
    assert reason in caught.value.message or "thought signature" in caught.value.message
    chunks, failure = await collect_until_error(fake, f"{MODEL}~finish={reason}")
    assert isinstance(failure, error)
    assert text_of(chunks) == TEXT  # what streamed before the failure reached the caller


@pytest.mark.parametrize("directive", ["status=content_filter", "blocked=PROHIBITED_CONTENT"])
async def test_a_blocked_prompt_is_a_content_policy_violation(fake, directive):
    with pytest.raises(ContentPolicyViolation, match="blockReason"):
        await complete(fake, f"{MODEL}~{directive}")
    chunks, failure = await collect_until_error(fake, f"{MODEL}~{directive}")
    assert chunks == [] and isinstance(failure, ContentPolicyViolation)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("directive", "error"),
    [
        ("status=400", InvalidRequest),
        ("status=context_window", ContextWindowExceeded),
        ("status=401", AuthenticationFailed),
        ("status=403", PermissionDenied),
        ("status=404", ModelNotFound),
        ("status=429~retry_after=2", RateLimited),
        ("status=500", ProviderError),
        ("status=503", ServiceUnavailable),
        ("status=504", ProviderError),
    ],
)
async def test_upstream_errors_map_to_the_most_specific_class(fake, directive, error):
    with pytest.raises(error) as caught:
        await complete(fake, f"{MODEL}~{directive}")
    assert type(caught.value) is error
    assert caught.value.provider == "gemini" and caught.value.upstream_status
    if error is RateLimited:
        assert caught.value.retry_after_s == 2.0
    _, failure = await collect_until_error(fake, f"{MODEL}~{directive}")
    assert type(failure) is error


async def test_a_wrong_key_is_an_authentication_failure():
    async with FakeUpstream(api_key="right-key") as fake:
        with pytest.raises(AuthenticationFailed, match="API key not valid"):
            await complete(fake, MODEL, api_key="wrong-key")


async def test_no_key_fails_before_any_request(fake):
    with pytest.raises(AuthenticationFailed, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        await complete(fake, MODEL, api_key=None)
    assert fake.request_count == 0


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (403, status_body(403, NO_KEY_MESSAGE, "PERMISSION_DENIED"), AuthenticationFailed),
        (
            429,
            status_body(
                429,
                "Quota exceeded",
                "RESOURCE_EXHAUSTED",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [
                            {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}
                        ],
                    }
                ],
            ),
            QuotaExceeded,
        ),
        (502, b"<html>Bad Gateway</html>", ProviderError),
    ],
)
def test_other_error_bodies_map_too(status, body, error):
    assert type(error_from_response(status, body, {}, model=MODEL)) is error


async def test_an_error_event_mid_stream_raises_after_the_text_so_far(fake):
    chunks, failure = await collect_until_error(fake, f"{MODEL}~stream_error_after=2")
    assert isinstance(failure, ProviderError) and "internal error" in failure.message
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 2


async def test_a_stream_cut_short_is_a_provider_error(fake):
    _, failure = await collect_until_error(fake, f"{MODEL}~disconnect_after=2")
    assert isinstance(failure, ProviderError)


async def test_a_hanging_upstream_times_out_and_is_left(fake):
    with pytest.raises(RequestTimeout):
        await complete(fake, f"{MODEL}~hang", timeout=0.5)
    async with asyncio.timeout(TIMEOUT_S):
        await fake.wait_for_disconnects(1)


async def test_closing_a_stream_early_closes_the_upstream_connection():
    async with FakeUpstream(chunk_delay_s=0.05) as fake:
        stream = await complete(fake, f"{MODEL}~chunks=50", stream=True)
        async with asyncio.timeout(TIMEOUT_S):
            await anext(stream)
            await stream.aclose()
            disconnects = await fake.wait_for_disconnects(1)
    assert disconnects[0].was_streaming


# --------------------------------------------------------------------------- refused


def plain_body() -> dict[str, Any]:
    return {"contents": HI_CONTENTS}


TOP_LEVEL_REFUSALS = [
    ("user", {"user": "u-1"}),
    ("safety_identifier", {"safety_identifier": "u-1"}),
    ("logit_bias", {"logit_bias": {"50256": -100}}),
    ("prediction", {"prediction": {"type": "content", "content": "x"}}),
    ("prompt_cache_key", {"prompt_cache_key": "k"}),
    ("verbosity", {"verbosity": "low"}),
    ("web_search_options", {"web_search_options": {}}),
    ("audio", {"audio": {"voice": "alloy", "format": "wav"}}),
    ("functions", {"functions": [{"name": "f"}]}),
    ("function_call", {"function_call": "auto"}),
    ("n", {"n": 9}),
    ("stop", {"stop": ["a", "b", "c", "d", "e", "f"]}),
    ("parallel_tool_calls", {"parallel_tool_calls": False}),
    ("store", {"store": True}),
    ("modalities", {"modalities": ["text", "audio"]}),
    ("service_tier", {"service_tier": "scale"}),
    ("foo", {"extra_body": {"foo": 1}}),
]


@pytest.mark.parametrize(("param", "params"), TOP_LEVEL_REFUSALS)
async def test_parameters_gemini_cannot_honor_are_refused_or_dropped(fake, param, params):
    with pytest.raises(UnsupportedParams) as caught:
        await complete(fake, MODEL, **params)
    assert caught.value.param == param and "gemini" in caught.value.message
    assert fake.request_count == 0
    response = await complete(fake, MODEL, drop_params=True, **params)
    assert response.choices[0].message.content == TEXT
    assert sent(fake) == plain_body()


async def test_reasoning_effort_none_is_refused_on_gemini_3(fake):
    with pytest.raises(UnsupportedParams) as caught:
        await complete(fake, "gemini-3-pro-preview", reasoning_effort="none")
    assert caught.value.param == "reasoning_effort"
    await complete(fake, "gemini-3-pro-preview", reasoning_effort="none", drop_params=True)
    assert "generationConfig" not in sent(fake)


MESSAGE_REFUSALS = [
    ("messages[0].name", [{"role": "user", "content": "hi", "name": "ann"}]),
    (
        "messages[0].content[0].cache_control",
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
    ),
    (
        "messages[0].content[1].image_url.detail",
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"},
                    },
                ],
            }
        ],
    ),
    (
        "messages[0].content[1].file.file_id",
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "file", "file": {"file_id": "f-1"}},
                ],
            }
        ],
    ),
    (
        "messages[0].content[0].type",
        [
            {
                "role": "system",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
                ],
            },
            {"role": "user", "content": "hi"},
        ],
    ),
]


@pytest.mark.parametrize(("param", "messages"), MESSAGE_REFUSALS)
async def test_message_fields_gemini_cannot_carry_are_refused_or_dropped(fake, param, messages):
    with pytest.raises(UnsupportedParams) as caught:
        await complete(fake, MODEL, messages)
    assert caught.value.param == param
    await complete(fake, MODEL, messages, drop_params=True)
    assert fake.request_count == 1


async def test_unsupported_tool_types_are_refused_or_dropped(fake):
    tools = [WEATHER, {"type": "web_search"}]
    with pytest.raises(UnsupportedParams) as caught:
        await complete(fake, MODEL, tools=tools)
    assert caught.value.param == "tools[1].type"
    await complete(fake, MODEL, tools=tools, drop_params=True)
    assert [d["name"] for d in sent(fake)["tools"][0]["functionDeclarations"]] == ["get_weather"]


async def test_native_fields_of_the_wrong_type_are_a_400(fake):
    with pytest.raises(InvalidRequest) as caught:
        await complete(fake, MODEL, top_k="many")
    assert caught.value.param == "top_k"


# --------------------------------------------------------------------------- embeddings


async def test_one_input_is_embedded_with_embed_content(fake):
    response = await sdk.aembedding(
        "gemini/gemini-embedding-001", "alpha", api_base=fake.base_url, api_key=KEY, dimensions=8
    )
    request = fake.requests[-1]
    assert request.path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert request.json == {"content": {"parts": [{"text": "alpha"}]}, "outputDimensionality": 8}
    assert response.data[0].embedding == list(embedding_vector("alpha", 8))
    assert response.usage.prompt_tokens == count_tokens("alpha")  # estimated: none reported
    assert response.model == "gemini-embedding-001"


async def test_several_inputs_use_batches_of_at_most_100(fake):
    texts = [f"text {i}" for i in range(150)]
    response = await sdk.aembedding(
        "gemini/gemini-embedding-001",
        texts,
        api_base=fake.base_url,
        api_key=KEY,
        dimensions=4,
        task_type="RETRIEVAL_DOCUMENT",
    )
    assert [len(r.json["requests"]) for r in fake.requests] == [100, 50]
    first = fake.requests[0].json["requests"][0]
    assert first == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "text 0"}]},
        "taskType": "RETRIEVAL_DOCUMENT",
        "outputDimensionality": 4,
    }
    assert [d.index for d in response.data] == list(range(150))
    assert response.data[149].embedding == list(embedding_vector("text 149", 4))


async def test_base64_embeddings_are_packed_little_endian_float32(fake):
    response = await sdk.aembedding(
        "gemini/gemini-embedding-001",
        ["a", "b"],
        api_base=fake.base_url,
        api_key=KEY,
        dimensions=8,
        encoding_format="base64",
    )
    embedding = response.data[1].embedding
    assert isinstance(embedding, str)
    packed = array.array("f", base64.b64decode(embedding))
    assert list(packed) == list(embedding_vector("b", 8))


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"input": [[1, 2, 3]]}, InvalidRequest, "input"),
        ({"input": "a", "user": "u-1"}, UnsupportedParams, "user"),
        ({"input": "a", "extra_body": {"foo": 1}}, UnsupportedParams, "foo"),
    ],
)
async def test_embedding_inputs_and_params_gemini_cannot_take(fake, kwargs, error, param):
    with pytest.raises(error) as caught:
        await sdk.aembedding(
            "gemini/gemini-embedding-001", api_base=fake.base_url, api_key=KEY, **kwargs
        )
    assert caught.value.param == param and fake.request_count == 0


async def test_embedding_errors_map_like_chat_errors(fake):
    with pytest.raises(RateLimited):
        await sdk.aembedding(
            "gemini/gemini-embedding-001~status=429", "a", api_base=fake.base_url, api_key=KEY
        )


# --------------------------------------------------------------------------- deployment


async def test_keys_and_base_come_from_the_environment(fake):
    environ = {"GOOGLE_API_KEY": "google-key", "GEMINI_API_BASE": fake.base_url}
    await complete(fake, MODEL, api_key=None, api_base=None, environ=environ)
    assert fake.requests[-1].headers["x-goog-api-key"] == "google-key"
    environ["GEMINI_API_KEY"] = "gemini-key"
    await complete(fake, MODEL, api_key=None, api_base=None, environ=environ)
    assert fake.requests[-1].headers["x-goog-api-key"] == "gemini-key"


async def test_api_version_picks_the_path(fake):
    await complete(fake, MODEL, api_version="v1")
    assert fake.requests[-1].path == f"/v1/models/{MODEL}:generateContent"


async def test_deployment_default_params_apply_where_the_request_is_silent(fake):
    deployment = Deployment(
        provider="gemini",
        model=MODEL,
        api_base=fake.base_url,
        api_key=Secret(KEY),
        default_params={"temperature": 0.3, "top_k": 5, "max_tokens": 64},
    )
    body = {"model": MODEL, "messages": HI, "temperature": 0.9}
    call = ChatCall(request=chat_request_from_dict(body), body=body)
    async with HttpClient() as http:
        adapter = GeminiAdapter(deployment, http)
        async with asyncio.timeout(TIMEOUT_S):
            await adapter.chat(call)
    assert sent(fake)["generationConfig"] == {"temperature": 0.9, "topK": 5, "maxOutputTokens": 64}


def test_invalid_default_params_fail_when_the_adapter_is_built():
    deployment = Deployment(provider="gemini", model=MODEL, default_params={"temperature": "hot"})
    with pytest.raises(InternalError, match="default_params"):
        GeminiAdapter(deployment, HttpClient())


def test_the_docs_table_lists_every_refused_parameter_with_its_reason():
    doc = (Path(__file__).resolve().parents[3] / "docs" / "providers" / "gemini.md").read_text()
    first_cells = {
        line.split("|")[1].strip().strip("`") for line in doc.splitlines() if line.startswith("| `")
    }
    assert set(REFUSED) | set(CONDITIONAL) <= first_cells
    assert all(reason in doc for reason in REFUSED.values())
