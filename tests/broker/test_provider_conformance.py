"""Every provider through the whole service, driven by the official `openai` client.

One config holds a model group per (provider, scenario), all pointing at the fake upstream,
which speaks each provider's own wire format. The same scenarios run against every provider:
a whole answer, a stream that reassembles to the same answer with usage last, streamed tool
calls by index, upstream 429 / overloaded, a refused parameter (and the same request with
drop_params), and embeddings where the provider has them. The scenarios run in-process (the
test harness) and once more against a real `switchboard up` subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from broker.config import load_config_text
from tests.broker.harness import service
from tests.redis_helpers import REDIS_URL
from workers.providers.bedrock.signing import credentials_for
from workers.testing.server import FakeUpstream

# The AWS documentation's example key pair: the fake Bedrock checks SigV4 signatures with it.
AWS_KEY_ID = "AKIDEXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
HELLO = [{"role": "user", "content": "Say hello"}]
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    for name in ("get_weather", "get_time")
]
TIMEOUT_S = 20


class Target(NamedTuple):
    """One provider as the conformance scenarios see it."""

    provider: str
    model: str  # litellm_params.model, before scenario directives
    settings: Mapping[str, str]  # more litellm_params (api_base is added for all)
    refused: Mapping[str, Any]  # a parameter the provider cannot honor, with a value
    overloaded_status: int  # the status the provider sends when it is overloaded
    embedding_model: str | None = None

    @property
    def reply_text(self) -> str:
        return f"This is a fake reply from {self.model.partition('/')[2]}."


TARGETS = (
    Target(
        "openai",
        "openai/gpt-4o-mini",
        {"api_key": "sk-fake"},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        503,
        "openai/text-embedding-3-small",
    ),
    Target(
        "azure",
        "azure/my-gpt4o",
        {"api_key": "azure-fake", "api_version": "2024-10-21"},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        503,
    ),
    Target(
        "anthropic",
        "anthropic/claude-sonnet-4-5",
        {"api_key": "sk-ant-fake"},
        {"logit_bias": {"50256": -100}},
        529,
    ),
    Target(
        "gemini",
        "gemini/gemini-2.5-flash",
        {"api_key": "gemini-fake"},
        {"logit_bias": {"50256": -100}},
        503,
        "gemini/gemini-embedding-001",
    ),
    Target(
        "bedrock",
        "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0",
        # Credentials by reference, resolved from the environment the config loads with.
        {
            "aws_access_key_id": "os.environ/CONFORMANCE_AWS_KEY_ID",
            "aws_secret_access_key": "os.environ/CONFORMANCE_AWS_SECRET",
            "aws_region_name": "us-east-1",
        },
        {"logit_bias": {"50256": -100}},
        503,
        "bedrock/amazon.titan-embed-text-v2:0",
    ),
    Target(
        "groq",
        "groq/llama-3.1-8b-instant",
        {"api_key": "gsk-fake"},
        {"logit_bias": {"50256": -100}},
        503,
    ),
)
TARGET_IDS = [t.provider for t in TARGETS]


def scenarios(target: Target) -> dict[str, str]:
    """Model group suffix -> the fake's scenario directives for it."""
    return {
        "": "",
        "-tools": "~tools=2",
        "-429": "~status=429~retry_after=3",
        "-busy": f"~status={target.overloaded_status}",
        # The delay lets the first chunks leave before the error: a stream that fails within
        # its first batch is still retryable and fails with an HTTP status instead.
        "-broken": "~stream_error_after=2~chunk_delay=0.1",
    }


def api_base(target: Target, fake_url: str) -> str:
    return fake_url + "/v1" if target.provider in ("openai", "groq") else fake_url


def config_text(fake_url: str, namespace: str) -> str:
    lines = ["model_list:"]

    def entry(group: str, model: str, target: Target) -> None:
        lines.extend([f"  - model_name: {group}", "    litellm_params:", f"      model: {model}"])
        lines.append(f"      api_base: {api_base(target, fake_url)}")
        lines.extend(f"      {key}: {value}" for key, value in target.settings.items())

    for target in TARGETS:
        for suffix, directives in scenarios(target).items():
            entry(target.provider + suffix, target.model + directives, target)
        if target.embedding_model:
            entry(f"{target.provider}-embed", target.embedding_model, target)
    lines += ["router_settings:", "  num_retries: 0", "switchboard_settings:"]
    lines += [f"  namespace: {namespace}"]
    return "\n".join(lines) + "\n"


AWS_CONFIG_ENV = {"CONFORMANCE_AWS_KEY_ID": AWS_KEY_ID, "CONFORMANCE_AWS_SECRET": AWS_SECRET}


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """botocore reads the environment and ~/.aws; the tests use only what they configure."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    credentials_for.cache_clear()
    yield
    credentials_for.cache_clear()


@contextlib.asynccontextmanager
async def in_process(fake: FakeUpstream, namespace: str) -> AsyncIterator[AsyncOpenAI]:
    config = load_config_text(config_text(fake.base_url, namespace), AWS_CONFIG_ENV)
    async with service(config) as ([door], _), client_for(door.url) as client:
        yield client


@contextlib.asynccontextmanager
async def client_for(url: str) -> AsyncIterator[AsyncOpenAI]:
    # No client retries: each scenario must see the gateway's first answer.
    async with AsyncOpenAI(
        base_url=url + "/v1", api_key="sk-switchboard", max_retries=0, timeout=TIMEOUT_S
    ) as client:
        yield client


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
    assert all(c.id for c in calls)

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
            await _create(client, target.provider + "-429", stream=stream)
        assert caught.value.status_code == 429
        assert caught.value.type == "rate_limit_error"  # type: ignore[attr-defined]


async def check_retry_after(client: AsyncOpenAI, target: Target) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        await _create(client, target.provider + "-429", stream=False)
    assert caught.value.response.headers.get("retry-after") == "3"


async def check_overloaded(client: AsyncOpenAI, target: Target) -> None:
    for stream in (False, True):
        with pytest.raises(openai.APIStatusError) as caught:
            await _create(client, target.provider + "-busy", stream=stream)
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
        await _create(client, target.provider, extra_body={param: value})
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == param and body["code"] == "unsupported_parameter"
    assert f"`{param}`" in body["message"] and target.provider in body["message"]
    response = await _create(
        client, target.provider, extra_body={param: value, "drop_params": True}
    )
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


async def _create(
    client: AsyncOpenAI, model: str, *, stream: bool = False, extra_body: Any = None
) -> Any:
    if not stream:
        return await client.chat.completions.create(
            model=model, messages=HELLO, extra_body=extra_body
        )
    chunks = await client.chat.completions.create(
        model=model, messages=HELLO, stream=True, extra_body=extra_body
    )
    return [chunk async for chunk in chunks]


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
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace) as client:
        await check_stream_reassembles(client, target)
        await check_stream_without_usage(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_tool_calls_stream_as_deltas_by_index(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace) as client:
        await check_tool_calls(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_upstream_429_is_a_rate_limit_error(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace) as client:
        await check_rate_limit(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_upstream_retry_after_reaches_the_client(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace) as client:
        await check_retry_after(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_overloaded_upstream_is_a_retryable_503(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace) as client:
        await check_overloaded(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_mid_stream_upstream_error_ends_the_stream_with_an_error_event(
    fake, namespace, target
):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace) as client:
        await check_mid_stream_error(client, target)


@pytest.mark.parametrize("target", TARGETS, ids=TARGET_IDS)
async def test_refused_parameter_is_a_400_naming_it_unless_drop_params(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace) as client:
        await check_refused_param(client, target)


EMBEDDING_TARGETS = [t for t in TARGETS if t.embedding_model]


@pytest.mark.parametrize("target", EMBEDDING_TARGETS, ids=[t.provider for t in EMBEDDING_TARGETS])
async def test_embeddings(fake, namespace, target):
    async with asyncio.timeout(TIMEOUT_S), in_process(fake, namespace) as client:
        await check_embeddings(client, target)


# ---------------------------------------------------------------------------------- switchboard up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_until_ready(url: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:
        while True:
            assert process.returncode is None, "switchboard up exited before it was ready"
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with http.get(url + "/health/readiness") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def switchboard_up(config: Path, environ: Mapping[str, str]) -> AsyncIterator[str]:
    port = free_port()
    # The installed console script when there is one, else the module it runs.
    script = Path(sys.executable).with_name("switchboard")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "broker.cli"]
    command += ["--log-level", "WARNING", "up", "--config", str(config)]
    command += ["--port", str(port), "--workers", "1"]
    process = await asyncio.create_subprocess_exec(*command, env=dict(environ))
    url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(30):
            await wait_until_ready(url, process)
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
    assert process.returncode == 0, f"switchboard up exited with {process.returncode}"


async def test_every_provider_through_switchboard_up(fake, namespace, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(config_text(fake.base_url, namespace))
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
