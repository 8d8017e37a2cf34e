"""The in-process SDK against the fake OpenAI, Azure and OpenAI-compatible upstreams."""

from __future__ import annotations

import json

import pytest

from workers.errors import AuthenticationFailed, InvalidRequest, UnsupportedParams
from workers.sdk import calls as sdk
from workers.sdk.assemble import stream_chunk_builder
from workers.sdk.stream import ChatStream, SyncChatStream
from workers.testing.server import FakeUpstream, ThreadedFakeUpstream
from workers.wire import ChatCompletion, ChatCompletionChunk

KEY = "sk-test"
HELLO = [{"role": "user", "content": "Say hello"}]


def v1(fake: FakeUpstream | ThreadedFakeUpstream) -> str:
    return fake.base_url + "/v1"


async def collect(stream: object) -> list[ChatCompletionChunk]:
    assert isinstance(stream, ChatStream)
    return [chunk async for chunk in stream]


async def test_openai_completion_returns_text_usage_and_cost(fake: FakeUpstream) -> None:
    response = await sdk.acompletion("openai/gpt-4o-mini", HELLO, api_base=v1(fake), api_key=KEY)
    assert isinstance(response, ChatCompletion)
    assert response.choices[0].message.content == "This is a fake reply from gpt-4o-mini."
    assert response.choices[0].finish_reason == "stop"
    assert response.usage is not None and response.usage.total_tokens > 0
    assert response.hidden_params["cost_known"] is True
    assert response.hidden_params["cost_usd"] > 0
    assert response["choices"][0]["message"]["content"] == response.choices[0].message.content
    assert response.model_dump()["object"] == "chat.completion"


async def test_stream_with_include_usage_ends_with_usage_details(fake: FakeUpstream) -> None:
    stream = await sdk.acompletion(
        "openai/gpt-4o-mini~cached=64~reasoning=8",
        HELLO,
        stream=True,
        stream_options={"include_usage": True},
        api_base=v1(fake),
        api_key=KEY,
        base_model="gpt-4o-mini",
    )
    chunks = await collect(stream)
    assert all(chunk.usage is None for chunk in chunks[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.cached_tokens == 64
    assert last.usage.reasoning_tokens == 8
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "This is a fake reply from gpt-4o-mini."
    assert isinstance(stream, ChatStream) and stream.hidden_params["cost_known"] is True


async def test_stream_without_include_usage_hides_the_usage_chunk_but_costs_it(
    fake: FakeUpstream,
) -> None:
    stream = await sdk.acompletion(
        "openai/gpt-4o-mini", HELLO, stream=True, api_base=v1(fake), api_key=KEY
    )
    chunks = await collect(stream)
    assert all(chunk.choices for chunk in chunks)
    assert isinstance(stream, ChatStream)
    assert stream.usage is not None and stream.hidden_params["cost_usd"] > 0
    # The SDK asked the host for usage so cost is known, though the caller did not.
    assert fake.requests[-1].json["stream_options"] == {"include_usage": True}


async def test_streamed_parallel_tool_calls_reassemble_into_json(fake: FakeUpstream) -> None:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    stream = await sdk.acompletion(
        "openai/gpt-4o-mini~tools=2",
        HELLO,
        stream=True,
        tools=tools,
        api_base=v1(fake),
        api_key=KEY,
    )
    chunks = await collect(stream)
    response = stream_chunk_builder(chunks)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None and len(choice.message.tool_calls) == 2
    for call in choice.message.tool_calls:
        assert call.id and call.function.name
        assert isinstance(json.loads(call.function.arguments), dict)


async def test_azure_uses_deployment_url_api_version_and_api_key(fake: FakeUpstream) -> None:
    response = await sdk.acompletion(
        "azure/my-gpt4o", HELLO, api_base=fake.base_url, api_key=KEY, api_version="2024-10-21"
    )
    assert isinstance(response, ChatCompletion) and response.choices[0].message.content
    request = fake.requests[-1]
    assert request.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert request.query["api-version"] == "2024-10-21"
    assert request.headers["api-key"] == KEY


async def test_azure_stream_skips_the_prompt_filter_chunk(fake: FakeUpstream) -> None:
    stream = await sdk.acompletion(
        "azure/my-gpt4o",
        HELLO,
        stream=True,
        api_base=fake.base_url,
        api_key=KEY,
        api_version="2024-10-21",
    )
    chunks = await collect(stream)
    assert chunks and all(chunk.choices and chunk.id for chunk in chunks)


@pytest.mark.parametrize("provider", ["mistral", "groq", "hosted_vllm", "together_ai", "deepseek"])
async def test_openai_compatible_hosts_complete_and_stream(
    fake: FakeUpstream, provider: str
) -> None:
    response = await sdk.acompletion(
        f"{provider}/some-model",
        HELLO,
        api_base=v1(fake),
        api_key=KEY,
        max_completion_tokens=20,
    )
    assert isinstance(response, ChatCompletion)
    assert response.choices[0].message.content == "This is a fake reply from some-model."
    # These hosts know only `max_tokens`.
    assert fake.requests[-1].json.get("max_tokens") == 20
    stream = await sdk.acompletion(
        f"{provider}/some-model", HELLO, stream=True, api_base=v1(fake), api_key=KEY
    )
    assert len(await collect(stream)) > 2


async def test_mistral_gets_random_seed_for_seed(fake: FakeUpstream) -> None:
    await sdk.acompletion("mistral/m", HELLO, seed=7, api_base=v1(fake), api_key=KEY)
    body = fake.requests[-1].json
    assert body["random_seed"] == 7 and "seed" not in body


async def test_unknown_kwargs_and_extra_body_reach_openai_as_sent(fake: FakeUpstream) -> None:
    await sdk.acompletion(
        "openai/gpt-4o-mini",
        HELLO,
        api_base=v1(fake),
        api_key=KEY,
        brand_new_param={"x": 1},
        extra_body={"another": True},
    )
    body = fake.requests[-1].json
    assert body["brand_new_param"] == {"x": 1} and body["another"] is True
    assert body["model"] == "gpt-4o-mini"


async def test_unsupported_param_is_refused_naming_it(fake: FakeUpstream) -> None:
    with pytest.raises(UnsupportedParams) as caught:
        await sdk.acompletion(
            "groq/llama", HELLO, logit_bias={"50256": -100}, api_base=v1(fake), api_key=KEY
        )
    error = caught.value
    assert error.param == "logit_bias" and "groq" in error.message
    body = error.to_body().error
    assert (body.type, body.code, body.param) == (
        "invalid_request_error",
        "unsupported_parameter",
        "logit_bias",
    )
    assert fake.request_count == 0


async def test_unsupported_param_with_drop_params_is_dropped(fake: FakeUpstream) -> None:
    response = await sdk.acompletion(
        "groq/llama",
        HELLO,
        logit_bias={"50256": -100},
        drop_params=True,
        api_base=v1(fake),
        api_key=KEY,
    )
    assert isinstance(response, ChatCompletion)
    assert "logit_bias" not in fake.requests[-1].json


async def test_num_retries_retries_a_rate_limit_after_retry_after(fake: FakeUpstream) -> None:
    response = await sdk.acompletion(
        "openai/gpt-4o-mini~status=429~retry_after=0.05~fail_first=2",
        HELLO,
        num_retries=2,
        api_base=v1(fake),
        api_key=KEY,
    )
    assert isinstance(response, ChatCompletion)
    assert fake.request_count == 3


async def test_missing_api_key_is_an_authentication_error(fake: FakeUpstream) -> None:
    with pytest.raises(AuthenticationFailed, match="OPENAI_API_KEY"):
        await sdk.acompletion("openai/gpt-4o-mini", HELLO, api_base=v1(fake), environ={})


async def test_invalid_request_is_refused_before_any_call(fake: FakeUpstream) -> None:
    with pytest.raises(InvalidRequest) as caught:
        await sdk.acompletion(
            "openai/gpt-4o-mini", HELLO, temperature=5, api_base=v1(fake), api_key=KEY
        )
    assert caught.value.param == "temperature"
    with pytest.raises(InvalidRequest) as caught:
        await sdk.acompletion(
            "openai/gpt-4o-mini",
            [{"role": "wizard", "content": "x"}],
            api_base=v1(fake),
            api_key=KEY,
        )
    assert caught.value.param == "messages[0].role"
    assert fake.request_count == 0


async def test_sync_completion_works_inside_a_running_loop() -> None:
    # A notebook cell runs inside an event loop; the blocking call must not need its own.
    # (The fake runs in a thread: this loop is blocked while the call waits.)
    with FakeUpstream.in_thread() as fake:
        response = sdk.completion("openai/gpt-4o-mini", HELLO, api_base=v1(fake), api_key=KEY)
        assert isinstance(response, ChatCompletion) and response.choices[0].message.content
        stream = sdk.completion(
            "openai/gpt-4o-mini", HELLO, stream=True, api_base=v1(fake), api_key=KEY
        )
        assert isinstance(stream, SyncChatStream)
        chunks = list(stream)
    assert stream_chunk_builder(chunks).choices[0].message.content == (
        "This is a fake reply from gpt-4o-mini."
    )


def test_sync_completion_works_without_a_loop() -> None:
    with FakeUpstream.in_thread() as fake:
        response = sdk.completion(
            "openai/gpt-4o-mini", HELLO, api_base=fake.base_url + "/v1", api_key=KEY
        )
    assert isinstance(response, ChatCompletion) and response.usage is not None


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
async def test_embeddings_in_both_encodings(fake: FakeUpstream, encoding_format: str) -> None:
    response = await sdk.aembedding(
        "openai/text-embedding-3-small",
        ["a", "b"],
        encoding_format=encoding_format,
        api_base=v1(fake),
        api_key=KEY,
    )
    assert len(response.data) == 2
    expected_type = list if encoding_format == "float" else str
    assert all(isinstance(item.embedding, expected_type) for item in response.data)
    assert response.hidden_params["cost_known"] is True


async def test_embeddings_on_a_provider_without_them_is_a_clear_error(fake: FakeUpstream) -> None:
    with pytest.raises(InvalidRequest, match="groq does not offer embeddings"):
        await sdk.aembedding("groq/e", "a", api_base=v1(fake), api_key=KEY)
