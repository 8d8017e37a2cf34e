"""/v1/messages through the whole service, driven by the official `anthropic` client, for an
OpenAI, an Azure, an Anthropic, a Gemini, a Bedrock and an OpenAI-compatible (Groq)
deployment (fakes speaking each one's wire format): whole answers, streams, tool use, a
Claude-Code-like tool loop, thinking, the parameters that must be carried or refused,
count_tokens and Anthropic-shaped errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from anthropic import AsyncAnthropic

from broker.errors import anthropic_error_json
from tests.broker.harness import make_config, service
from tests.broker.ingress.setup import INGRESS_IDS, INGRESS_TARGETS, TIMEOUT_S, gateway
from tests.broker.providers_setup import (
    Target,
    no_ambient_aws,  # noqa: F401 (autouse fixture)
)
from tests.claude_sdk import HELLO, TOOLS, tool_loop


def body_of(caught: Any) -> Any:
    """The parsed error body an SDK exception carries."""
    return caught.value.body


@contextlib.asynccontextmanager
async def client(fake, namespace) -> AsyncIterator[tuple[Any, str]]:
    """The SDK untyped: its TypedDict parameters would make every literal body a cast."""
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with AsyncAnthropic(
            base_url=url, api_key="sk-switchboard", max_retries=0, timeout=TIMEOUT_S
        ) as sdk:
            yield sdk, url


@pytest.mark.parametrize("target", INGRESS_TARGETS, ids=INGRESS_IDS)
async def test_whole_message_and_stream_agree(fake, namespace, target: Target):
    async with client(fake, namespace) as (sdk, _):
        message = await sdk.messages.create(model=target.provider, max_tokens=256, messages=HELLO)
        assert message.type == "message" and message.role == "assistant"
        # Translated replies carry the name the client used; Anthropic's own, its model id.
        native = target.provider == "anthropic"
        assert message.model == ("claude-sonnet-4-5-20250929" if native else target.provider)
        assert [b.type for b in message.content] == ["text"]
        assert message.content[0].text == target.reply_text
        assert message.stop_reason == "end_turn"
        assert message.usage.output_tokens > 0 and message.usage.input_tokens > 0

        async with sdk.messages.stream(
            model=target.provider, max_tokens=256, messages=HELLO
        ) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        assert "".join(texts) == target.reply_text
        assert final.content[0].text == target.reply_text
        assert final.stop_reason == "end_turn"
        assert final.usage.output_tokens == message.usage.output_tokens


@pytest.mark.parametrize("target", INGRESS_TARGETS, ids=INGRESS_IDS)
async def test_tool_use_whole_and_streamed(fake, namespace, target: Target):
    async with client(fake, namespace) as (sdk, _):
        model = target.provider + "-tools"
        message = await sdk.messages.create(
            model=model, max_tokens=256, messages=HELLO, tools=TOOLS
        )
        assert message.stop_reason == "tool_use"
        uses = [b for b in message.content if b.type == "tool_use"]
        assert len(uses) == 2 and all(isinstance(u.input, dict) for u in uses)
        assert uses[0].name == "get_weather" and uses[0].input["call"] == 0

        async with sdk.messages.stream(
            model=model, max_tokens=256, messages=HELLO, tools=TOOLS
        ) as stream:
            final = await stream.get_final_message()
        streamed = [b for b in final.content if b.type == "tool_use"]
        assert [u.input for u in streamed] == [u.input for u in uses]
        assert final.stop_reason == "tool_use"


@pytest.mark.parametrize("target", INGRESS_TARGETS, ids=INGRESS_IDS)
async def test_claude_code_like_tool_loop(fake, namespace, target: Target):
    """assistant tool_use -> user tool_result -> final text, streamed, as Claude Code runs it."""
    async with client(fake, namespace) as (sdk, _):
        answer, _ = await tool_loop(
            sdk,
            tools_model=target.provider + "-tools",
            model=target.provider,
            also_say=[{"type": "text", "text": "ok?"}],
        )
        assert answer.stop_reason == "end_turn"
        assert answer.content[-1].type == "text"
        assert answer.content[-1].text == target.reply_text


async def test_top_k_and_stop_sequences_reach_anthropic(fake, namespace):
    async with client(fake, namespace) as (sdk, _):
        fake.state.clear()
        await sdk.messages.create(
            model="anthropic",
            max_tokens=256,
            messages=HELLO,
            extra_body={"top_k": 5},
            stop_sequences=["END"],
            system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        )
        (sent,) = fake.state.requests
        assert sent.json["top_k"] == 5
        assert sent.json["stop_sequences"] == ["END"]
        assert sent.json["system"][0]["cache_control"] == {"type": "ephemeral"}


async def test_thinking_blocks_come_back_signed(fake, namespace):
    async with client(fake, namespace) as (sdk, _):
        thinking = {"type": "enabled", "budget_tokens": 1024}
        message = await sdk.messages.create(
            model="anthropic", max_tokens=2048, messages=HELLO, thinking=thinking
        )
        assert message.content[0].type == "thinking"
        assert message.content[0].signature
        async with sdk.messages.stream(
            model="anthropic", max_tokens=2048, messages=HELLO, thinking=thinking
        ) as stream:
            final = await stream.get_final_message()
        assert [b.type for b in final.content] == ["thinking", "text"]
        assert final.content[0].signature.startswith("EqQB")
        # The signed block goes back unchanged on the next turn.
        fake.state.clear()
        history = [
            *HELLO,
            {"role": "assistant", "content": [b.model_dump() for b in final.content]},
            {"role": "user", "content": "And again"},
        ]
        await sdk.messages.create(
            model="anthropic", max_tokens=2048, messages=history, thinking=thinking
        )
        (sent,) = fake.state.requests
        assert sent.json["messages"][1]["content"][0]["signature"] == final.content[0].signature


async def test_a_parameter_openai_cannot_take_is_refused_by_name(fake, namespace):
    async with client(fake, namespace) as (sdk, _):
        with pytest.raises(anthropic.BadRequestError) as caught:
            await sdk.messages.create(
                model="openai",
                max_tokens=256,
                messages=HELLO,
                thinking={"type": "enabled", "budget_tokens": 1024},
            )
        assert body_of(caught)["type"] == "error"
        assert "thinking" in body_of(caught)["error"]["message"]


async def test_top_k_to_openai_is_refused_by_name_unless_dropped(fake, namespace):
    """The issue's own example: Claude Code's top_k cannot reach OpenAI, and is never sent
    there silently; with drop_params it is dropped before the call."""
    async with client(fake, namespace) as (sdk, _):
        with pytest.raises(anthropic.BadRequestError) as caught:
            await sdk.messages.create(
                model="openai", max_tokens=256, messages=HELLO, extra_body={"top_k": 5}
            )
        assert body_of(caught)["type"] == "error"
        assert "top_k" in body_of(caught)["error"]["message"]
        fake.state.clear()
        await sdk.messages.create(
            model="openai",
            max_tokens=256,
            messages=HELLO,
            extra_body={"top_k": 5, "drop_params": True},
        )
        (sent,) = fake.state.requests
        assert "top_k" not in sent.json


async def test_errors_come_in_anthropics_shape(fake, namespace):
    async with client(fake, namespace) as (sdk, url):
        with pytest.raises(anthropic.NotFoundError) as missing:
            await sdk.messages.create(model="nope", max_tokens=10, messages=HELLO)
        assert body_of(missing)["error"]["type"] == "not_found_error"
        with pytest.raises(anthropic.RateLimitError) as limited:
            await sdk.messages.create(model="anthropic-429", max_tokens=10, messages=HELLO)
        assert body_of(limited)["error"]["type"] == "rate_limit_error"
        async with aiohttp.ClientSession() as session:
            headers = {"x-api-key": "sk-any", "anthropic-version": "2023-06-01"}
            async with session.post(
                url + "/v1/messages", json={"model": "openai", "messages": HELLO}, headers=headers
            ) as reply:
                assert reply.status == 400
                body = await reply.json()
                assert body["error"] == {
                    "type": "invalid_request_error",
                    "message": "`max_tokens` is required",
                }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),  # a budget refusal: Anthropic's type for other 4xx
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_anthropic_error_types_by_status(status: int, kind: str):
    assert orjson.loads(anthropic_error_json(status, "m")) == {
        "type": "error",
        "error": {"type": kind, "message": "m"},
    }


async def test_count_tokens_asks_anthropic_or_says_it_estimates(fake, namespace):
    async with client(fake, namespace) as (sdk, _):
        fake.state.clear()
        raw = await sdk.messages.with_raw_response.count_tokens(
            model="openai", messages=HELLO, tools=TOOLS
        )
        counted = await raw.parse()
        assert counted.input_tokens > 0
        assert raw.headers["x-switchboard-token-count"] == "estimate"
        assert fake.state.request_count == 0
        raw = await sdk.messages.with_raw_response.count_tokens(model="anthropic", messages=HELLO)
        counted = await raw.parse()
        assert counted.input_tokens > 0
        assert raw.headers["x-switchboard-token-count"] == "provider"
        (sent,) = fake.state.requests
        assert sent.path == "/v1/messages/count_tokens"
        assert sent.json == {"model": "claude-sonnet-4-5", "messages": HELLO}


async def test_key_by_x_api_key_or_bearer_and_401_in_anthropics_shape(fake, namespace):
    general = "general_settings:\n  master_key: sk-master\n"
    config = make_config(fake.base_url + "/v1", namespace, general=general)
    async with asyncio.timeout(TIMEOUT_S), service(config) as ([door], _):
        for headers in ({"x-api-key": "sk-master"}, {"Authorization": "Bearer sk-master"}):
            async with aiohttp.ClientSession() as session:
                body = {"model": "gpt-test", "max_tokens": 10, "messages": HELLO}
                headers = {**headers, "anthropic-version": "2023-06-01"}
                async with session.post(
                    door.url + "/v1/messages", json=body, headers=headers
                ) as reply:
                    assert reply.status == 200, await reply.text()
                    assert (await reply.json())["type"] == "message"
        sdk: Any = AsyncAnthropic(base_url=door.url, api_key="sk-wrong", max_retries=0)
        async with sdk:
            with pytest.raises(anthropic.AuthenticationError) as refused:
                await sdk.messages.create(model="gpt-test", max_tokens=10, messages=HELLO)
        assert body_of(refused)["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("target", INGRESS_TARGETS, ids=INGRESS_IDS)
async def test_a_mid_stream_failure_is_an_error_event(fake, namespace, target: Target):
    async with client(fake, namespace) as (sdk, _):
        with pytest.raises(anthropic.APIStatusError) as failed:
            async with sdk.messages.stream(
                model=target.provider + "-broken", max_tokens=256, messages=HELLO
            ) as stream:
                async for _ in stream:
                    pass
        assert body_of(failed)["type"] == "error"
