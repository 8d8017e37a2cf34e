"""The fake Gemini API, proven by the official `google-genai` SDK parsing every form it serves,
and compared structurally with the shared wire examples (issue #7)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.wire_examples import example_path
from workers.testing import FakeUpstream, ThreadedFakeUpstream
from workers.testing.embedding import embedding_vector
from workers.testing.gemini import FINISH_REASONS
from workers.testing.gemini_render import WITHOUT_CONTENT
from workers.testing.tokens import count_tokens

from .conftest import example_json

MODEL = "gemini-2.5-flash"
KEY = "gm-test-key"
TIMEOUT_S = 10
WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
        )
    ]
)
THOUGHTS = types.ThinkingConfig(include_thoughts=True)
TEXT = f"This is a fake reply from {MODEL}."
TEXT_TOKENS = count_tokens(TEXT)


@pytest.fixture
async def gemini(fake: FakeUpstream) -> AsyncIterator[genai.client.AsyncClient]:
    # Our own session: the SDK's default one subclasses ClientSession, which aiohttp
    # deprecates with a warning (an error under filterwarnings=error).
    async with aiohttp.ClientSession() as session:
        client = genai.Client(api_key=KEY, http_options=http_options(fake, aiohttp_client=session))
        try:
            yield client.aio
        finally:
            await client.aio.aclose()


def http_options(fake: FakeUpstream | ThreadedFakeUpstream, **extra: Any) -> types.HttpOptions:
    return types.HttpOptions(
        base_url=fake.base_url,
        api_version="v1beta",
        timeout=TIMEOUT_S * 1000,
        retry_options=types.HttpRetryOptions(attempts=1),
        **extra,
    )


async def generate(client: Any, model: str, contents: Any = "Capital of France?", **config: Any):
    async with asyncio.timeout(TIMEOUT_S):
        return await client.models.generate_content(
            model=model, contents=contents, config=types.GenerateContentConfig(**config)
        )


async def stream(client: Any, model: str, contents: Any = "Capital of France?", **config: Any):
    async with asyncio.timeout(TIMEOUT_S):
        chunks = await client.models.generate_content_stream(
            model=model, contents=contents, config=types.GenerateContentConfig(**config)
        )
        return [chunk async for chunk in chunks]


async def raw_post(
    fake: FakeUpstream,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    sent = {"x-goog-api-key": KEY} if headers is None else headers
    async with asyncio.timeout(TIMEOUT_S), aiohttp.ClientSession() as http:
        async with http.post(fake.base_url + path, json=body, headers=sent) as response:
            return response.status, dict(response.headers), await response.read()


def generate_path(model: str, method: str = "generateContent") -> str:
    return f"/v1beta/models/{model}:{method}"


USER_TURN = {"contents": [{"role": "user", "parts": [{"text": "Capital of France?"}]}]}


def shape(value: Any) -> Any:
    """Keys (in order) and value types of a JSON value; a list by its first item. Function
    arguments are the caller's data, compared only as objects."""
    if isinstance(value, dict):
        return [(key, "object" if key == "args" else shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


def sse_payloads(body: bytes) -> list[Any]:
    assert body.endswith(b"\r\n\r\n")
    events = body.split(b"\r\n\r\n")[:-1]
    assert all(event.startswith(b"data: ") for event in events)
    return [json.loads(event.removeprefix(b"data: ")) for event in events]


def example_events(name: str) -> list[Any]:
    return sse_payloads(example_path("gemini", name).read_bytes())


# --------------------------------------------------------------------------- plain answers


async def test_answer_is_parsed_with_system_instruction_and_usage(fake, gemini):
    reply = await generate(
        gemini, f"{MODEL}~cached=2048~reasoning=52", system_instruction="Be brief.", seed=7
    )
    assert reply.text == TEXT
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP
    assert reply.model_version == MODEL and reply.response_id
    usage = reply.usage_metadata
    assert (usage.prompt_token_count, usage.cached_content_token_count) == (2048, 2048)
    assert (usage.candidates_token_count, usage.thoughts_token_count) == (TEXT_TOKENS, 52)
    assert usage.total_token_count == 2048 + TEXT_TOKENS + 52
    request = fake.requests[-1]
    assert (request.method, request.path) == (
        "POST",
        generate_path(MODEL + "~cached=2048~reasoning=52"),
    )
    assert request.headers["x-goog-api-key"] == KEY
    assert request.json["systemInstruction"]["parts"] == [{"text": "Be brief."}]


async def test_answer_is_pretty_printed_with_the_service_headers(fake):
    status, headers, body = await raw_post(fake, generate_path(MODEL), USER_TURN)
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=UTF-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert body.startswith(b'{\n  "candidates": [\n') and body.endswith(b"}\n")


async def test_answer_has_the_example_structure_key_for_key(fake):
    _, _, body = await raw_post(fake, generate_path(f"{MODEL}~cached=2048~reasoning=52"), USER_TURN)
    assert shape(json.loads(body)) == shape(example_json("gemini", "generate_content.json"))


async def test_thought_summaries_come_back_only_when_asked(gemini):
    reply = await generate(gemini, f"{MODEL}~reasoning=16", thinking_config=THOUGHTS)
    parts = reply.candidates[0].content.parts
    assert parts[0].thought is True and parts[0].text
    assert parts[1].thought is None and parts[1].text == TEXT
    assert parts[1].thought_signature is None
    plain = await generate(gemini, f"{MODEL}~reasoning=16")
    assert [p.thought for p in plain.candidates[0].content.parts] == [None]
    assert plain.usage_metadata.thoughts_token_count == 16


async def test_a_thinking_text_answer_is_signed_when_functions_are_declared(gemini):
    reply = await generate(gemini, f"{MODEL}~reasoning=16", tools=[WEATHER])
    assert reply.candidates[0].content.parts[0].thought_signature  # bytes, base64-decoded
    chunks = await stream(gemini, f"{MODEL}~reasoning=16", tools=[WEATHER])
    signed = [c for c in chunks if c.candidates[0].content.parts[0].thought_signature]
    assert signed == [chunks[-1]]


async def test_parallel_function_calls_are_whole_and_signed_on_the_first(gemini):
    reply = await generate(gemini, f"{MODEL}~tools=2", "Weather in Paris?", tools=[WEATHER])
    assert [(call.name, call.args) for call in reply.function_calls] == [
        ("get_weather", {"query": "Weather in Paris?", "call": 0}),
        ("get_weather", {"query": "Weather in Paris?", "call": 1}),
    ]
    parts = reply.candidates[0].content.parts
    assert parts[0].thought_signature and parts[1].thought_signature is None
    assert reply.candidates[0].finish_reason == types.FinishReason.STOP


async def test_candidate_count_gives_that_many_candidates(gemini):
    reply = await generate(gemini, MODEL, candidate_count=2)
    assert [c.index for c in reply.candidates] == [0, 1]
    assert reply.usage_metadata.candidates_token_count == 2 * TEXT_TOKENS


async def test_logprobs_are_parsed(gemini):
    reply = await generate(gemini, f"{MODEL}~chunks=2", response_logprobs=True, logprobs=2)
    result = reply.candidates[0].logprobs_result
    tokens = [c.token for c in result.chosen_candidates]
    assert len(tokens) == 2 and "".join(tokens) == TEXT
    assert [len(top.candidates) for top in result.top_candidates] == [2, 2]


@pytest.mark.parametrize("reason", sorted(FINISH_REASONS))
async def test_every_finish_reason_is_parsed_plain_and_streamed(gemini, reason):
    reply = await generate(gemini, f"{MODEL}~finish={reason}")
    candidate = reply.candidates[0]
    assert candidate.finish_reason == types.FinishReason(reason)
    assert (candidate.content is None) == (reason in WITHOUT_CONTENT)
    chunks = await stream(gemini, f"{MODEL}~finish={reason}")
    finishes = [c.candidates[0].finish_reason for c in chunks if c.candidates]
    assert finishes[-1] == types.FinishReason(reason) and not any(finishes[:-1])


@pytest.mark.parametrize(
    "model", [f"{MODEL}~blocked=PROHIBITED_CONTENT", f"{MODEL}~status=content_filter"]
)
async def test_a_blocked_prompt_has_feedback_and_no_candidates(gemini, model):
    reply = await generate(gemini, model)
    assert reply.candidates is None
    assert reply.prompt_feedback.block_reason in (
        types.BlockedReason.PROHIBITED_CONTENT,
        types.BlockedReason.SAFETY,
    )
    chunks = await stream(gemini, model)
    assert len(chunks) == 1 and chunks[0].prompt_feedback.block_reason


async def test_a_function_result_turn_is_answered_in_text(fake, gemini):
    contents = [
        types.Content(role="user", parts=[types.Part(text="Weather?")]),
        types.Content(
            role="model",
            parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args={}))],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        name="get_weather", response={"temp_c": 18}
                    )
                )
            ],
        ),
    ]
    reply = await generate(gemini, f"{MODEL}~tools=1~echo", contents, tools=[WEATHER])
    assert reply.function_calls is None
    assert json.loads(reply.text) == [{"temp_c": 18}]


# --------------------------------------------------------------------------- streams


async def test_text_stream_matches_the_example_event_by_event(fake):
    status, headers, body = await raw_post(
        fake,
        generate_path(f"{MODEL}~chunks=3~reasoning=21", "streamGenerateContent?alt=sse"),
        USER_TURN,
    )
    assert (status, headers["Content-Type"]) == (200, "text/event-stream")
    events = sse_payloads(body)
    assert [shape(e) for e in events] == [shape(e) for e in example_events("stream_text.sse")]
    counts = [e["usageMetadata"]["candidatesTokenCount"] for e in events]
    assert counts == sorted(counts) and counts[-1] == TEXT_TOKENS
    assert len({e["responseId"] for e in events}) == 1


async def test_function_call_stream_matches_the_example(fake):
    body = {**USER_TURN, "tools": [{"functionDeclarations": [{"name": "get_weather"}]}]}
    _, _, raw = await raw_post(
        fake, generate_path(f"{MODEL}~tools=1~reasoning=48", "streamGenerateContent?alt=sse"), body
    )
    events = sse_payloads(raw)
    expected = example_events("stream_function_call.sse")
    assert [shape(e) for e in events] == [shape(e) for e in expected]


async def test_sdk_parses_the_text_stream_with_cumulative_usage(gemini):
    chunks = await stream(gemini, f"{MODEL}~cached=64~reasoning=8")
    assert "".join(c.text or "" for c in chunks) == TEXT
    assert len(chunks) == 6
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    usage = chunks[-1].usage_metadata
    assert (usage.cached_content_token_count, usage.thoughts_token_count) == (64, 8)
    assert usage.candidates_token_count == TEXT_TOKENS


async def test_sdk_parses_streamed_calls_and_thoughts(gemini):
    chunks = await stream(
        gemini,
        f"{MODEL}~tools=3~reasoning=8",
        "Weather?",
        tools=[WEATHER],
        thinking_config=THOUGHTS,
    )
    assert chunks[0].candidates[0].content.parts[0].thought is True
    calls = [call for chunk in chunks for call in chunk.function_calls or ()]
    assert [call.args["call"] for call in calls] == [0, 1, 2]
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


async def test_stream_without_alt_sse_is_one_json_array(fake):
    _, headers, body = await raw_post(
        fake, generate_path(MODEL, "streamGenerateContent"), USER_TURN
    )
    events = json.loads(body)
    assert headers["Content-Type"].startswith("application/json")
    assert len(events) == 6 and events[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_stream_error_after_some_chunks_raises_a_server_error(gemini):
    chunks = []
    with pytest.raises(genai_errors.ServerError) as caught:
        async with asyncio.timeout(TIMEOUT_S):
            async for chunk in await gemini.models.generate_content_stream(
                model=f"{MODEL}~stream_error_after=2", contents="Hi"
            ):
                chunks.append(chunk)
    assert len(chunks) == 2
    assert (caught.value.code, caught.value.status) == (500, "INTERNAL")


async def test_disconnect_after_cuts_the_stream_short(fake):
    async with asyncio.timeout(TIMEOUT_S), aiohttp.ClientSession() as http:
        url = fake.base_url + generate_path(f"{MODEL}~disconnect_after=2", "streamGenerateContent")
        async with http.post(
            url + "?alt=sse", json=USER_TURN, headers={"x-goog-api-key": KEY}
        ) as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()


async def test_a_client_leaving_a_hanging_request_is_recorded(fake):
    async def call() -> None:
        await raw_post(fake, generate_path(f"{MODEL}~hang"), USER_TURN)

    task = asyncio.create_task(call())
    async with asyncio.timeout(TIMEOUT_S):
        await fake.wait_for_requests(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        disconnects = await fake.wait_for_disconnects(1)
    assert disconnects[0].model == f"{MODEL}~hang" and not disconnects[0].was_streaming


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("directive", "code", "status", "kind"),
    [
        ("400", 400, "INVALID_ARGUMENT", genai_errors.ClientError),
        ("context_window", 400, "INVALID_ARGUMENT", genai_errors.ClientError),
        ("401", 401, "UNAUTHENTICATED", genai_errors.ClientError),
        ("403", 403, "PERMISSION_DENIED", genai_errors.ClientError),
        ("404", 404, "NOT_FOUND", genai_errors.ClientError),
        ("429", 429, "RESOURCE_EXHAUSTED", genai_errors.ClientError),
        ("500", 500, "INTERNAL", genai_errors.ServerError),
        ("503", 503, "UNAVAILABLE", genai_errors.ServerError),
        ("504", 504, "DEADLINE_EXCEEDED", genai_errors.ServerError),
    ],
)
async def test_scripted_errors_raise_the_sdk_error_for_their_status(
    gemini, directive, code, status, kind
):
    with pytest.raises(kind) as caught:
        await generate(gemini, f"{MODEL}~status={directive}")
    assert (caught.value.code, caught.value.status) == (code, status)
    with pytest.raises(kind):
        await stream(gemini, f"{MODEL}~status={directive}")


async def test_rate_limit_body_matches_the_example_with_the_asked_delay(fake, gemini):
    with pytest.raises(genai_errors.ClientError) as caught:
        await generate(gemini, f"{MODEL}~status=429~retry_after=2")
    details = caught.value.details["error"]["details"]
    assert [d["retryDelay"] for d in details if d["@type"].endswith("RetryInfo")] == ["2s"]
    _, _, body = await raw_post(fake, generate_path(f"{MODEL}~status=429"), USER_TURN)
    assert json.loads(body) == example_json("gemini", "error_429_resource_exhausted.json")


async def test_a_wrong_key_gets_the_example_body_and_no_key_a_403():
    async with FakeUpstream(api_key="right-key") as fake:
        status, _, body = await raw_post(
            fake, generate_path(MODEL), USER_TURN, {"x-goog-api-key": "nope"}
        )
        assert status == 400
        assert json.loads(body) == example_json("gemini", "error_400_api_key_invalid.json")
        status, _, body = await raw_post(
            fake, generate_path(MODEL) + "?key=right-key", USER_TURN, {}
        )
        assert status == 200
        status, _, body = await raw_post(fake, generate_path(MODEL), USER_TURN, {})
        assert status == 403
        assert json.loads(body)["error"]["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": []}, "contents is not specified"),
        (
            {**USER_TURN, "generationConfig": {"maxOutputToken": 5}},
            "unknown field `maxOutputToken`",
        ),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}]}]},
            "Base64 decoding failed",
        ),
        (
            {**USER_TURN, "generationConfig": {"stopSequences": ["a", "b", "c", "d", "e", "f"]}},
            "stop_sequences",
        ),
        (
            {
                **USER_TURN,
                "generationConfig": {
                    "thinkingConfig": {"thinkingBudget": 1, "thinkingLevel": "LOW"}
                },
            },
            "one of thinking budget and thinking level",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]}
                ]
            },
            "function response turn comes immediately after a function call turn",
        ),
        (
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {
                        "role": "model",
                        "parts": [{"functionCall": {"name": "f"}}, {"functionCall": {"name": "g"}}],
                    },
                    {
                        "role": "user",
                        "parts": [{"functionResponse": {"name": "f", "response": {}}}],
                    },
                ]
            },
            "number of function response parts is equal",
        ),
    ],
)
async def test_invalid_requests_get_invalid_argument(fake, body, message):
    status, _, raw = await raw_post(fake, generate_path(MODEL), body)
    error = json.loads(raw)["error"]
    assert (status, error["status"]) == (400, "INVALID_ARGUMENT")
    assert message in error["message"]


async def test_snake_case_fields_are_accepted_like_the_service_does(fake):
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generation_config": {"max_output_tokens": 5},
    }
    status, _, _ = await raw_post(fake, generate_path(MODEL), body)
    assert status == 200


async def test_gemini_3_refuses_a_current_turn_call_without_its_signature(fake, gemini):
    history: list[dict[str, Any]] = [
        {"role": "user", "parts": [{"text": "Weather?"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {}}}]},
    ]
    status, _, raw = await raw_post(
        fake, generate_path("gemini-3-pro-preview"), {"contents": history}
    )
    assert status == 400 and "missing a thought_signature" in json.loads(raw)["error"]["message"]
    history[1]["parts"][0]["thoughtSignature"] = base64.b64encode(b"sig").decode()
    status, _, _ = await raw_post(
        fake, generate_path("gemini-3-pro-preview"), {"contents": history}
    )
    assert status == 200


async def test_bad_directives_are_a_400_naming_them(fake):
    for model in (f"{MODEL}~bogus", f"{MODEL}~finish=NOPE"):
        status, _, raw = await raw_post(fake, generate_path(model), USER_TURN)
        assert status == 400 and "fake upstream" in json.loads(raw)["error"]["message"]


# --------------------------------------------------------------------------- embeddings


async def test_sdk_batch_embeddings_are_the_deterministic_vectors(fake, gemini):
    async with asyncio.timeout(TIMEOUT_S):
        reply = await gemini.models.embed_content(
            model="gemini-embedding-001",
            contents=["alpha", "beta"],
            config=types.EmbedContentConfig(output_dimensionality=8, task_type="RETRIEVAL_QUERY"),
        )
    assert [e.values for e in reply.embeddings] == [
        list(embedding_vector("alpha", 8)),
        list(embedding_vector("beta", 8)),
    ]
    request = fake.requests[-1]
    assert request.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert request.json["requests"][0]["model"] == "models/gemini-embedding-001"


async def test_embed_content_answers_one_vector_of_the_model_size(fake):
    body = {"content": {"parts": [{"text": "alpha"}]}}
    status, _, raw = await raw_post(
        fake, generate_path("gemini-embedding-001", "embedContent"), body
    )
    assert status == 200
    assert json.loads(raw) == {"embedding": {"values": list(embedding_vector("alpha", 3072))}}


@pytest.mark.parametrize(
    "requests",
    [
        [{"model": "models/other", "content": {"parts": [{"text": "a"}]}}],
        [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}}] * 101,
        [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "a"}]},
                "outputDimensionality": 4000,
            }
        ],
    ],
)
async def test_impossible_batches_get_invalid_argument(fake, requests):
    path = generate_path("gemini-embedding-001", "batchEmbedContents")
    status, _, _ = await raw_post(fake, path, {"requests": requests})
    assert status == 400


def test_the_sync_sdk_works_against_the_threaded_fake():
    with FakeUpstream.in_thread() as fake:
        client = genai.Client(api_key=KEY, http_options=http_options(fake))
        try:
            reply = client.models.generate_content(model=MODEL, contents="Hi")
        finally:
            client.close()
    assert reply.text == TEXT
