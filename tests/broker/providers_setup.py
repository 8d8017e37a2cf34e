"""The providers the service-level provider suites run against, the config that points a model
group per (provider, scenario) at the fake upstream, and the clients and processes they use.

Shared by `test_provider_conformance` (the same scenarios for every provider) and
`test_provider_translation` (what the native adapters translate, both ways).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam

from broker.config.loader import load_config_text
from tests.broker.harness import service
from tests.broker.processes import free_port, switchboard, wait_ready
from workers.providers.bedrock.signing import credentials_for
from workers.testing.server import FakeUpstream

# The AWS documentation's example key pair: the fake Bedrock checks SigV4 signatures with it.
AWS_KEY_ID = "AKIDEXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AWS_CONFIG_ENV = {"CONFORMANCE_AWS_KEY_ID": AWS_KEY_ID, "CONFORMANCE_AWS_SECRET": AWS_SECRET}
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]
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
    """One provider as the service-level scenarios see it."""

    provider: str
    model: str  # litellm_params.model, before scenario directives
    settings: Mapping[str, str]  # more litellm_params (api_base is added for all)
    refused: Mapping[str, Any]  # a parameter the provider cannot honor, with a value
    overloaded_status: int  # the status the provider sends when it is overloaded
    embedding_model: str | None = None

    @property
    def base_model(self) -> str:
        # Without LiteLLM's route prefix (`bedrock/converse/<id>`): it says how, not which.
        return self.model.partition("/")[2].removeprefix("converse/").removeprefix("invoke/")

    @property
    def reply_text(self) -> str:
        return f"This is a fake reply from {self.base_model}."


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
    # Ollama's native API (/api/chat, NDJSON streams), no key (issue #16).
    Target("ollama", "ollama/llama3.1", {}, {"logit_bias": {"50256": -100}}, 503),
    # A bare endpoint address, as Hugging Face's dedicated endpoints are written (issue #16).
    Target(
        "huggingface",
        "huggingface/meta-llama/Llama-3.1-8B-Instruct",
        {"api_key": "hf-fake"},
        {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        503,
    ),
)
TARGET_IDS = [t.provider for t in TARGETS]
NATIVE_TARGETS = [t for t in TARGETS if t.provider in ("anthropic", "gemini", "bedrock")]
NATIVE_IDS = [t.provider for t in NATIVE_TARGETS]


class Group(NamedTuple):
    """One model group of the config: a provider's model with scenario directives."""

    name: str
    target: Target
    directives: str
    params: Mapping[str, Any] = {}


def scenarios(target: Target) -> dict[str, str]:
    """The conformance suite's model group suffix -> the fake's scenario directives for it."""
    return {
        "": "",
        "-tools": "~tools=2",
        "-429": "~status=429~retry_after=3",
        "-busy": f"~status={target.overloaded_status}",
        # The delay lets the first chunks leave before the error: a stream that fails within
        # its first batch is still retryable and fails with an HTTP status instead.
        "-broken": "~stream_error_after=2~chunk_delay=0.1",
    }


def conformance_groups() -> list[Group]:
    groups = [
        Group(target.provider + suffix, target, directives)
        for target in TARGETS
        for suffix, directives in scenarios(target).items()
    ]
    groups += [
        Group(f"{t.provider}-embed", t._replace(model=t.embedding_model), "")
        for t in TARGETS
        if t.embedding_model
    ]
    return groups


def group_name(target: Target, directives: str) -> str:
    """The group for a native scenario: the provider and its directives, as the fake reads
    them (`anthropic~status=413`)."""
    return target.provider + directives


def api_base(target: Target, fake_url: str) -> str:
    return fake_url + "/v1" if target.provider in ("openai", "groq") else fake_url


def config_text(fake_url: str, namespace: str, groups: list[Group]) -> str:
    lines = ["model_list:"]
    for group in groups:
        target = group.target
        lines += [f"  - model_name: {group.name}", "    litellm_params:"]
        lines += [f"      model: {target.model}{group.directives}"]
        lines.append(f"      api_base: {api_base(target, fake_url)}")
        lines += [f"      {key}: {value}" for key, value in target.settings.items()]
        lines += [f"      {key}: {value}" for key, value in group.params.items()]
        # The model name carries directives; prices and limits are the undecorated model's.
        lines += ["    model_info:", f"      base_model: {target.base_model}"]
    lines += ["router_settings:", "  num_retries: 0", "switchboard_settings:"]
    lines += [f"  namespace: {namespace}"]
    # The fake serves the images that Gemini and Bedrock fetch, on loopback, which media
    # fetches may reach only when the operator allows it.
    lines += ["  media_fetch:", "    allow_networks: [127.0.0.1/32]"]
    return "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def no_ambient_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """botocore reads the environment and ~/.aws; the tests use only what they configure.
    Autouse in every module that imports it."""
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
async def in_process(
    fake: FakeUpstream, namespace: str, groups: list[Group]
) -> AsyncIterator[AsyncOpenAI]:
    config = load_config_text(config_text(fake.base_url, namespace, groups), AWS_CONFIG_ENV)
    async with service(config) as ([door], _), client_for(door.url) as client:
        yield client


@contextlib.asynccontextmanager
async def client_for(url: str) -> AsyncIterator[AsyncOpenAI]:
    # No client retries: each scenario must see the gateway's first answer.
    async with AsyncOpenAI(
        base_url=url + "/v1", api_key="sk-switchboard", max_retries=0, timeout=TIMEOUT_S
    ) as client:
        yield client


async def create(
    client: AsyncOpenAI,
    model: str,
    *,
    messages: list[Any] = HELLO,
    stream: bool = False,
    **kwargs: Any,
) -> Any:
    """A whole completion, or every chunk of a streamed one."""
    if not stream:
        return await client.chat.completions.create(model=model, messages=messages, **kwargs)
    chunks = await client.chat.completions.create(
        model=model, messages=messages, stream=True, **kwargs
    )
    return [chunk async for chunk in chunks]


# ---------------------------------------------------------------------------------- switchboard up


@contextlib.asynccontextmanager
async def switchboard_up(config: Path, environ: Mapping[str, str]) -> AsyncIterator[str]:
    """`switchboard up` with one worker on `config`; its URL once ready. It must exit 0."""
    port = free_port()
    args = ["--log-level", "WARNING", "up", "--config", str(config)]
    args += ["--port", str(port), "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    async with switchboard(
        *args, directory=config.parent, redis_url=environ.get("REDIS_URL"), env=environ, name="up"
    ) as process:
        await wait_ready(url, workers=1, processes=(process,))
        yield url
    assert process.popen.returncode == 0, process.output()
