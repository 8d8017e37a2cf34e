"""The OpenAI fake, proven by the official `openai` SDK parsing what it sends."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import openai
import pytest

from workers.testing import FakeUpstream
from workers.testing.embedding import embedding_vector

from .conftest import USER

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}


async def test_non_stream_answer_is_parsed_with_usage(fake, client):
    reply = await client.chat.completions.create(model="gpt-4o", messages=USER)
    assert reply.choices[0].message.content == "This is a fake reply from gpt-4o."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "gpt-4o-2024-08-06"
    assert reply.system_fingerprint and reply.service_tier == "default"
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 9, 14)
    assert reply._request_id.startswith("req_")
    request = fake.requests[-1]
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["Authorization"] == "Bearer sk-test-123"
    assert request.json["messages"] == USER


async def test_stream_with_include_usage_puts_usage_only_on_the_last_chunk(client):
    stream = await client.chat.completions.create(
        model="gpt-4o~cached=1024~reasoning=64",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a fake reply from gpt-4o."
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 6
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert [f for f in finishes if f] == ["stop"]
    assert chunks[-1].choices == []
    assert all(chunk.usage is None for chunk in chunks[:-1])
    usage = chunks[-1].usage
    assert usage.prompt_tokens_details.cached_tokens == 1024
    assert usage.completion_tokens_details.reasoning_tokens == 64
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_stream_without_include_usage_has_no_usage_chunk(client):
    stream = await client.chat.completions.create(
        model="gpt-4o~chunks=3", messages=USER, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None and chunk.choices for chunk in chunks)
    assert len(chunks) == 1 + 3 + 1
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_parallel_tool_call_deltas_reassemble_into_json_arguments(client):
    stream = await client.chat.completions.create(
        model="gpt-4o~tools=2",
        messages=USER,
        tools=[WEATHER_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or []:
                slot = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += delta.id or ""
                slot["name"] += (delta.function and delta.function.name) or ""
                slot["arguments"] += (delta.function and delta.function.arguments) or ""
    assert sorted(calls) == [0, 1]
    assert finish == "tool_calls"
    assert calls[0]["id"] != calls[1]["id"]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_weather"]
    assert [json.loads(calls[i]["arguments"])["call"] for i in (0, 1)] == [0, 1]


async def test_tool_calls_without_stream_come_as_a_message(client):
    reply = await client.chat.completions.create(
        model="gpt-4o~tools=2", messages=USER, tools=[WEATHER_TOOL]
    )
    message = reply.choices[0].message
    assert message.content is None
    assert reply.choices[0].finish_reason == "tool_calls"
    assert [json.loads(c.function.arguments)["call"] for c in message.tool_calls] == [0, 1]


async def test_n_choices_are_answered(client):
    reply = await client.chat.completions.create(model="gpt-4o", messages=USER, n=2)
    assert [c.index for c in reply.choices] == [0, 1]
    stream = await client.chat.completions.create(model="gpt-4o", messages=USER, n=2, stream=True)
    texts = {0: "", 1: ""}
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts[0] == texts[1] == "This is a fake reply from gpt-4o."


async def test_echo_and_length_shape_the_answer(client):
    reply = await client.chat.completions.create(model="m~echo~length", messages=USER)
    assert reply.choices[0].message.content == "Capital of France?"
    assert reply.choices[0].finish_reason == "length"


async def test_embeddings_in_base64_and_float_decode_to_the_same_vector(fake, client):
    encoded = await client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert fake.requests[-1].json["encoding_format"] == "base64"
    floats = await client.embeddings.create(
        model="text-embedding-3-small", input="hello", encoding_format="float"
    )
    assert floats.data[0].embedding == list(embedding_vector("hello", 1536))
    assert encoded.data[0].embedding == pytest.approx(floats.data[0].embedding, abs=1e-7)
    assert floats.usage.prompt_tokens == 2
    assert floats.model == "text-embedding-3-small"


async def test_embeddings_honour_dimensions_and_token_inputs(client):
    reply = await client.embeddings.create(
        model="text-embedding-3-large", input=[[1, 2, 3], [4, 5]], dimensions=8
    )
    assert [len(item.embedding) for item in reply.data] == [8, 8]
    assert reply.data[0].embedding != reply.data[1].embedding
    assert reply.usage.prompt_tokens == 5
    with pytest.raises(openai.BadRequestError, match="does not support specifying dimensions"):
        await client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)
    with pytest.raises(openai.BadRequestError, match="Must be between 1 and 1536"):
        await client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=4000)


async def test_models_are_listed(client):
    models = [model.id async for model in client.models.list()]
    assert "gpt-4o" in models and "text-embedding-3-small" in models


@pytest.mark.parametrize(
    ("status", "exception", "code"),
    [
        ("400", openai.BadRequestError, "empty_array"),
        ("401", openai.AuthenticationError, "invalid_api_key"),
        ("403", openai.PermissionDeniedError, "unsupported_country_region_territory"),
        ("404", openai.NotFoundError, "model_not_found"),
        ("429", openai.RateLimitError, "rate_limit_exceeded"),
        ("500", openai.InternalServerError, None),
        ("503", openai.InternalServerError, None),
        ("context_window", openai.BadRequestError, "context_length_exceeded"),
        ("content_filter", openai.BadRequestError, "content_filter"),
    ],
)
async def test_error_status_raises_the_sdk_exception(client, status, exception, code):
    with pytest.raises(exception) as caught:
        await client.chat.completions.create(model=f"gpt-4o~status={status}", messages=USER)
    assert caught.value.code == code
    assert caught.value.message


async def test_404_names_the_requested_model(client):
    with pytest.raises(openai.NotFoundError, match="The model `gpt-9` does not exist"):
        await client.chat.completions.create(model="gpt-9~status=404", messages=USER)


async def test_429_carries_retry_after_and_rate_limit_headers(client):
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="gpt-4o~status=429~retry_after=2", messages=USER)
    headers = caught.value.response.headers
    assert headers["retry-after"] == "2"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert headers["x-ratelimit-reset-tokens"] == "2s"
    assert caught.value.type == "tokens"


async def test_retry_after_is_sent_on_any_error(client):
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(
            model="gpt-4o~status=503~retry_after=0.5", messages=USER
        )
    assert caught.value.response.headers["retry-after"] == "0.5"


async def test_in_stream_error_event_raises_api_error_after_partial_output(client):
    stream = await client.chat.completions.create(
        model="gpt-4o~stream_error_after=2", messages=USER, stream=True
    )
    received = []
    with pytest.raises(openai.APIError, match="server had an error") as caught:
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 1 + 2
    assert caught.value.body == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }


async def test_mid_stream_disconnect_makes_the_sdk_raise(client):
    stream = await client.chat.completions.create(
        model="gpt-4o~disconnect_after=2", messages=USER, stream=True
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in received) == "This is"


async def test_hang_ends_in_a_client_timeout_and_a_recorded_disconnect(fake):
    async with openai.AsyncOpenAI(
        base_url=fake.base_url + "/v1", api_key="sk-test", max_retries=0, timeout=0.2
    ) as impatient:
        with pytest.raises(openai.APITimeoutError):
            await impatient.chat.completions.create(model="gpt-4o~hang", messages=USER)
    async with asyncio.timeout(5):
        [disconnect] = await fake.wait_for_disconnects(1)
    assert (disconnect.model, disconnect.was_streaming) == ("gpt-4o~hang", False)


async def test_ttft_holds_back_the_whole_response(fake, client):
    task = asyncio.create_task(
        client.chat.completions.create(model="gpt-4o~ttft=30", messages=USER, stream=True)
    )
    async with asyncio.timeout(5):
        await fake.wait_for_requests(1)
        assert not task.done()
        task.cancel()
        # Had the fake answered at once, the client would have nothing left to abandon.
        [disconnect] = await fake.wait_for_disconnects(1)
    assert not disconnect.was_streaming
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_client_closing_a_stream_early_is_recorded(fake, client):
    stream = await client.chat.completions.create(
        model="gpt-4o~chunk_delay=30", messages=USER, stream=True
    )
    async with asyncio.timeout(5):
        first = await anext(aiter(stream))
        assert first.choices[0].delta.role == "assistant"
        assert fake.open_streams == 1
        await stream.close()
        [disconnect] = await fake.wait_for_disconnects(1)
    assert (disconnect.was_streaming, disconnect.events_sent) == (True, 1)
    assert fake.open_streams == 0


async def test_server_wide_delays_apply_unless_the_model_overrides_them():
    async with FakeUpstream(latency_s=30, ttft_s=30) as fake:
        async with openai.AsyncOpenAI(
            base_url=fake.base_url + "/v1", api_key="sk", max_retries=0, timeout=5
        ) as sdk:
            reply = await sdk.chat.completions.create(model="m~latency=0", messages=USER)
            assert reply.choices[0].message.content
            stream = await sdk.chat.completions.create(model="m~ttft=0", messages=USER, stream=True)
            assert [c async for c in stream]
            with pytest.raises(openai.APITimeoutError):
                await sdk.chat.completions.create(model="m", messages=USER, timeout=0.2)


async def test_fail_first_fails_only_the_first_requests_per_model_name(fake, client):
    model = "gpt-4o~status=503~fail_first=2"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model=model, messages=USER)
    assert (await client.chat.completions.create(model=model, messages=USER)).choices
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model=model + "~chunks=2", messages=USER)
    assert fake.model_counts == {model: 3, model + "~chunks=2": 1}
    fake.clear()
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model=model, messages=USER)


async def test_sdk_retries_through_fail_first_and_succeeds(fake):
    async with openai.AsyncOpenAI(
        base_url=fake.base_url + "/v1", api_key="sk", max_retries=2, timeout=5
    ) as sdk:
        model = "gpt-4o~status=429~fail_first=2~retry_after=0.01"
        reply = await sdk.chat.completions.create(model=model, messages=USER)
    assert reply.choices[0].message.content
    assert fake.request_count == 3


async def test_fail_first_can_cut_a_stream_once(client):
    model = "gpt-4o~disconnect_after=1~fail_first=1"
    with pytest.raises(openai.APIConnectionError):
        async for _ in await client.chat.completions.create(
            model=model, messages=USER, stream=True
        ):
            pass
    stream = await client.chat.completions.create(model=model, messages=USER, stream=True)
    assert [chunk async for chunk in stream][-1].choices[0].finish_reason == "stop"


async def test_unknown_directive_is_a_400_naming_it(client):
    with pytest.raises(openai.BadRequestError, match="unknown directive 'stauts'") as caught:
        await client.chat.completions.create(model="gpt-4o~stauts=429", messages=USER)
    assert caught.value.param == "model"


async def test_missing_or_wrong_key_is_a_401_with_openai_body():
    async with FakeUpstream(api_key="sk-right-key") as fake:
        async with aiohttp.ClientSession() as http:
            url = fake.base_url + "/v1/chat/completions"
            async with http.post(url, json={"model": "gpt-4o", "messages": USER}) as response:
                assert response.status == 401
                body = await response.json()
        assert body["error"]["message"].startswith("You didn't provide an API key.")
        async with openai.AsyncOpenAI(
            base_url=fake.base_url + "/v1", api_key="sk-wrong-key", max_retries=0
        ) as sdk:
            with pytest.raises(openai.AuthenticationError, match=r"sk-wro\*\*\*key") as caught:
                await sdk.chat.completions.create(model="gpt-4o", messages=USER)
        assert caught.value.code == "invalid_api_key"
    assert fake.request_count == 2


async def test_requests_can_be_awaited_and_cleared(fake, client):
    async with asyncio.timeout(5):
        task = asyncio.create_task(fake.wait_for_requests(2))
        await client.chat.completions.create(model="a", messages=USER)
        await client.chat.completions.create(model="b", messages=USER)
        recorded = await task
    assert [r.json["model"] for r in recorded] == ["a", "b"]
    fake.clear()
    assert (fake.requests, fake.request_count, fake.model_counts) == ([], 0, {})


async def test_a_vllm_server_continues_the_final_assistant_message(fake, client):
    prefix = "This is a fake"
    messages = [*USER, {"role": "assistant", "content": prefix}]
    stream = await client.chat.completions.create(
        model="gpt-4o~vllm~chunks=8",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"continue_final_message": True, "add_generation_prompt": False},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert prefix + text == "This is a fake reply from gpt-4o."
    assert chunks[-1].usage.completion_tokens == -(-len(text) // 4)
    assert fake.requests[-1].json["messages"][-1] == {"role": "assistant", "content": prefix}


@pytest.mark.parametrize(
    ("model", "prefix", "extra", "message"),
    [
        ("gpt-4o~vllm", "This is a real", {"add_generation_prompt": False}, "is not how"),
        ("gpt-4o~vllm", "This", {}, "Cannot set both"),
        ("gpt-4o", "This", {"add_generation_prompt": False}, "Unrecognized request argument"),
    ],
)
async def test_continuations_a_server_would_refuse_are_refused(
    client, model, prefix, extra, message
):
    messages = [*USER, {"role": "assistant", "content": prefix}]
    with pytest.raises(openai.BadRequestError, match=message):
        await client.chat.completions.create(
            model=model, messages=messages, extra_body={"continue_final_message": True, **extra}
        )
