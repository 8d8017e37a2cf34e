"""Every provider through the whole service, driven by the official `openai` client.

One config holds a model group per (provider, scenario), all pointing at the fake upstream,
which speaks each provider's own wire format. The same scenarios run against every provider:
a whole answer, a stream that reassembles to the same answer with usage last, streamed tool
calls by index, upstream 429 / overloaded, a refused parameter (and the same request with
drop_params), and embeddings where the provider has them. The scenarios run in-process (the
test harness) and once more against a real `switchboard up` subprocess, which also runs the
native adapters' translation scenarios of `test_provider_translation`.
"""

from __future__ import annotations

import asyncio
import json
import os

import openai
import pytest
from openai import AsyncOpenAI

from tests.broker.providers_setup import (
    AWS_CONFIG_ENV,
    HELLO,
    NATIVE_TARGETS,
    TARGET_IDS,
    TARGETS,
    TIMEOUT_S,
    TOOLS,
    Target,
    client_for,
    config_text,
    conformance_groups,
    create,
    in_process,
    no_ambient_aws,  # noqa: F401 (an autouse fixture: importing it applies it here)
    switchboard_up,
)
from tests.broker.test_provider_translation import GROUPS as TRANSLATION_GROUPS
from tests.broker.test_provider_translation import NATIVE_CHECKS
from tests.redis_helpers import REDIS_URL

GROUPS = conformance_groups()


# ---------------------------------------------------------------------------------- scenarios


async def check_whole_answer(client: AsyncOpenAI, target: Target) -> str:
    response = await client.chat.completions.create(model=target.provider, messages=HELLO)
    choice = response.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == target.reply_text
    assert choice.finish_reason == "stop"
    assert response.usage is not None and response.usage.completion_tokens > 0
    assert response.usage.total_tokens == (
        response.usage.prompt_tokens + response.usage.completion_tokens
    )
    return choice.message.content


async def check_stream_reassembles(client: AsyncOpenAI, target: Target) -> None:
    whole = await check_whole_answer(client, target)
    stream = await client.chat.completions.create(
        model=target.provider,
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    content_chunks = [c for c in chunks if c.choices]
    assert len(content_chunks) > 1, "the answer arrived in one piece, not streamed"
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == whole
    finish = [c.choices[0].finish_reason for c in content_chunks if c.choices[0].finish_reason]
    assert finish == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens > 0 and last.usage.prompt_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])


async def check_stream_without_usage(client: AsyncOpenAI, target: Target) -> None:
    stream = await client.chat.completions.create(
        model=target.provider, messages=HELLO, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert chunks and all(c.choices and c.usage is None for c in chunks)


async def check_tool_calls(client: AsyncOpenAI, target: Target) -> None:
    group = target.provider + "-tools"
    response = await client.chat.completions.create(model=group, messages=HELLO, tools=TOOLS)
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    whole = [(c.function.name, json.loads(c.function.arguments)) for c in calls]  # type: ignore[union-attr]
    assert [name for name, _ in whole] == ["get_weather", "get_time"]
    assert all(c.id and c.type == "function" for c in calls)

    stream = await client.chat.completions.create(
        model=group, messages=HELLO, tools=TOOLS, stream=True
    )
    by_index: dict[int, dict[str, str]] = {}
    finish: list[str] = []
    async for chunk in stream:
        for choice_delta in chunk.choices:
            for delta in choice_delta.delta.tool_calls or []:
                call = by_index.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                if delta.id:
                    call["id"] = delta.id
                    assert delta.type == "function"  # with the id, in the call's first delta
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
            if choice_delta.finish_reason:
                finish.append(choice_delta.finish_reason)
    assert sorted(by_index) == [0, 1]
    streamed = [(by_index[i]["name"], json.loads(by_index[i]["arguments"])) for i in (0, 1)]
    assert streamed == whole
    assert all(by_index[i]["id"] for i in (0, 1))
    assert finish == ["tool_calls"]


async def check_rate_limit(client: AsyncOpenAI, target: Target) -> None:
    for stream in (False, True):
        with pytest.raises(openai.RateLimitError) as caught:
            await create(client, target.provider + "-429", stream=stream)
        assert caught.value.status_code == 429
        assert caught.value.type == "rate_limit_error"


async def check_retry_after(client: AsyncOpenAI, target: Target) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await create(client, target.provider + "-429")
    assert caught.value.response.headers.get("retry-after") == "3"


async def check_overloaded(client: AsyncOpenAI, target: Target) -> None:
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as caught:
            await create(client, target.provider + "-busy", stream=stream)
        # 503: every OpenAI client retries it (and the gateway's router may).
        assert caught.value.status_code == 503
        assert isinstance(caught.value, openai.InternalServerError)


async def check_mid_stream_error(client: AsyncOpenAI, target: Target) -> None:
    stream = await client.chat.completions.create(
        model=target.provider + "-broken", messages=HELLO, stream=True
    )
    text = ""
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            text += "".join(c.delta.content or "" for c in chunk.choices)
    if isinstance(caught.value, openai.APIStatusError):
        # The failure came with the first batch (a slow reader), before any byte was sent.
        assert caught.value.status_code >= 500 and text == ""
    else:
        # The error event ends a stream whose status was already 200.
        assert text and target.reply_text.startswith(text) and text != target.reply_text


async def check_refused_param(client: AsyncOpenAI, target: Target) -> None:
    [(param, value)] = target.refused.items()
    with pytest.raises(openai.BadRequestError) as caught:
        await create(client, target.provider, extra_body={param: value})
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == param and body["code"] == "unsupported_parameter"
    assert f"`{param}`" in body["message"] and target.provider in body["message"]
    response = await create(client, target.provider, extra_body={param: value, "drop_params": True})
    assert response.choices[0].message.content == target.reply_text


async def check_embeddings(client: AsyncOpenAI, target: Target) -> None:
    response = await client.embeddings.create(
        model=f"{target.provider}-embed", input=["alpha", "beta"]
    )
    assert [e.index for e in response.data] == [0, 1]
    vectors = [e.embedding for e in response.data]
    assert all(len(v) > 0 and all(isinstance(x, float) for x in v) for v in vectors)
    assert vectors[0] != vectors[1]
    assert response.usage.prompt_tokens > 0


CHAT_SCENARIOS = (
    check_stream_reassembles,
    check_stream_without_usage,
    check_tool_calls,
    check_rate_limit,
    check_overloaded,
    check_mid_stream_error,
    check_refused_param,
)


# ---------------------------------------------------------------------------------- in-process


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_answer_and_stream_agree_with_usage_on_the_last_chunk(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_stream_reassembles(client, target)
        await check_stream_without_usage(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_tool_calls_stream_as_deltas_by_index(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_tool_calls(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_upstream_429_is_a_rate_limit_error(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_rate_limit(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_upstream_retry_after_reaches_the_client(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_retry_after(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_overloaded_upstream_is_a_retryable_503(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_overloaded(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_mid_stream_upstream_error_ends_the_stream_with_an_error_event(
    fake, namespace, target
):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_mid_stream_error(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_refused_parameter_is_a_400_naming_it_unless_drop_params(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_refused_param(client, target)


EMBEDDING_TARGETS = [t for t in TARGETS if t.embedding_model]


@pytest.mark.parametrize("target", EMBEDDING_TARGETS, ids=[t.provider for t in EMBEDDING_TARGETS])
async def test_embeddings(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace, GROUPS) as client:
        await check_embeddings(client, target)


# ---------------------------------------------------------------------------------- switchboard up


async def test_every_provider_through_switchboard_up(fake, namespace, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(config_text(fake.base_url, namespace, GROUPS + TRANSLATION_GROUPS))
    # Bedrock's credentials come through the config's os.environ/ references, resolved from
    # the subprocess's environment.
    environ = {**os.environ, **AWS_CONFIG_ENV, "REDIS_URL": REDIS_URL}
    async with switchboard_up(config, environ) as url, client_for(url) as client:
        async with asyncio.timeout(60):
            for target in TARGETS:
                for check in CHAT_SCENARIOS:
                    await check(client, target)
                if target.embedding_model:
                    await check_embeddings(client, target)
            # The native adapters' translation scenarios (test_provider_translation).
            for target in NATIVE_TARGETS:
                for native_check in NATIVE_CHECKS:
                    await native_check(client, fake, target)
