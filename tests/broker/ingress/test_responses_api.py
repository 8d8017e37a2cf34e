"""/v1/responses through the whole service, driven by the official `openai` client, for an
OpenAI, an Azure, an Anthropic, a Gemini, a Bedrock and an OpenAI-compatible (Groq)
deployment (fakes speaking each one's wire format): whole and streamed responses with the
event sequence the SDK checks, a Codex-like function-call loop through
`previous_response_id`, stored responses (retrieve, input_items, delete, another key's 404,
`store: false`), reasoning items carried across turns, and the refusals of what cannot be
translated."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from redis.asyncio import Redis

from tests.broker.harness import make_config, service
from tests.broker.ingress.setup import INGRESS_IDS, INGRESS_TARGETS, TIMEOUT_S, gateway
from tests.broker.providers_setup import (
    Target,
    no_ambient_aws,  # noqa: F401 (autouse fixture)
)
from workers.redis_streams import Keys

TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@contextlib.asynccontextmanager
async def client(fake, namespace) -> AsyncIterator[Any]:
    """The SDK untyped: its TypedDict parameters would make every literal body a cast."""
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        async with AsyncOpenAI(
            base_url=url + "/v1", api_key="sk-switchboard", max_retries=0, timeout=TIMEOUT_S
        ) as sdk:
            yield sdk


@pytest.mark.parametrize("target", INGRESS_TARGETS, ids=INGRESS_IDS)
async def test_whole_response_and_stream_agree(fake, namespace, target: Target):
    async with client(fake, namespace) as sdk:
        response = await sdk.responses.create(
            model=target.provider, input="Say hello", instructions="Be brief."
        )
        assert response.object == "response" and response.status == "completed"
        assert response.id.startswith("resp_")
        assert response.output_text == target.reply_text
        assert response.usage.output_tokens > 0 and response.usage.input_tokens > 0
        assert response.usage.input_tokens_details.cached_tokens == 0

        async with sdk.responses.stream(model=target.provider, input="Say hello") as stream:
            events = [event async for event in stream]
            final = await stream.get_final_response()
        assert final.output_text == target.reply_text
        assert [e.sequence_number for e in events] == list(range(len(events)))
        kinds = [e.type for e in events]
        assert kinds[:2] == ["response.created", "response.in_progress"]
        assert kinds[-1] == "response.completed"
        assert "response.output_text.delta" in kinds
        assert kinds.index("response.output_item.added") < kinds.index(
            "response.content_part.added"
        )
        assert final.usage.output_tokens == response.usage.output_tokens


@pytest.mark.parametrize("target", INGRESS_TARGETS, ids=INGRESS_IDS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_codex_like_function_call_loop(fake, namespace, target: Target, stream: bool):
    """function_call -> function_call_output via previous_response_id -> final text."""
    async with client(fake, namespace) as sdk:
        kinds: list[str] = []

        async def create(**kwargs: Any) -> Any:
            if not stream:
                return await sdk.responses.create(**kwargs)
            async with sdk.responses.stream(**kwargs) as events:
                kinds.extend([event.type async for event in events])
                return await events.get_final_response()

        first = await create(model=target.provider + "-tools", input="Weather?", tools=TOOLS)
        if stream:  # the arguments arrive as deltas, then whole, per call
            assert kinds.count("response.function_call_arguments.done") == 2, kinds
            assert kinds.index("response.function_call_arguments.delta") < kinds.index(
                "response.function_call_arguments.done"
            )
        calls = [item for item in first.output if item.type == "function_call"]
        assert len(calls) == 2 and calls[0].name == "get_weather"
        assert '"call":0' in calls[0].arguments.replace(" ", "")
        fake.state.clear()
        outputs = [
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
            for call in calls
        ]
        second = await create(
            model=target.provider, input=outputs, previous_response_id=first.id, tools=TOOLS
        )
        assert second.output_text == target.reply_text
        assert second.previous_response_id == first.id
        (sent,) = fake.state.requests
        assert b"sunny" in sent.body and b"Weather?" in sent.body


@pytest.mark.parametrize("target", INGRESS_TARGETS, ids=INGRESS_IDS)
async def test_stored_responses_retrieve_list_and_delete(fake, namespace, target: Target):
    async with client(fake, namespace) as sdk:
        response = await sdk.responses.create(
            model=target.provider, input="Say hello", metadata={"ticket": "T-1"}
        )
        assert response.metadata == {"ticket": "T-1"}
        again = await sdk.responses.retrieve(response.id)
        assert again.metadata == {"ticket": "T-1"}
        assert again.id == response.id and again.output_text == response.output_text
        items = await sdk.responses.input_items.list(response.id)
        assert [item.type for item in items.data] == ["message"]
        assert items.data[0].content[0].text == "Say hello"
        await sdk.responses.delete(response.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(response.id)
        unstored = await sdk.responses.create(model=target.provider, input="Say hello", store=False)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(unstored.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.create(
                model=target.provider, input="more", previous_response_id=unstored.id
            )
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve("resp_not-one-of-ours")


def translated_store_config(fake: Any, namespace: str, settings: dict[str, Any]) -> Any:
    """A master key and `gpt-chat` on the translation, so the stored responses under test are
    the gateway's own (a native OpenAI deployment's are OpenAI's)."""
    translated = (
        "- model_name: gpt-chat\n  litellm_params:\n    model: openai/gpt-4o\n"
        f"    api_base: {fake.base_url}/v1\n    api_key: sk-fake\n    responses_api: chat\n"
    )
    return make_config(
        fake.base_url + "/v1",
        namespace,
        general="general_settings:\n  master_key: sk-master-0123456789\n",
        settings=settings,
        extra_models=translated,
    )


async def test_another_keys_response_is_a_404(fake, namespace):
    settings = {
        "api_keys": "[{alias: a, key: sk-key-a-0123456789}, {alias: b, key: sk-key-b-0123456789}]"
    }
    config = translated_store_config(fake, namespace, settings)
    async with asyncio.timeout(TIMEOUT_S), service(config) as ([door], _):
        url = door.url + "/v1"
        owner: Any = AsyncOpenAI(base_url=url, api_key="sk-key-a-0123456789", max_retries=0)
        other: Any = AsyncOpenAI(base_url=url, api_key="sk-key-b-0123456789", max_retries=0)
        async with owner, other:
            response = await owner.responses.create(model="gpt-chat", input="Say hello")
            assert (await owner.responses.retrieve(response.id)).id == response.id
            with pytest.raises(openai.NotFoundError):
                await other.responses.retrieve(response.id)
            with pytest.raises(openai.NotFoundError):
                await other.responses.create(
                    model="gpt-chat", input="more", previous_response_id=response.id
                )
            with pytest.raises(openai.NotFoundError):
                await other.responses.delete(response.id)


async def test_reasoning_items_carry_claudes_signed_thinking_to_the_next_turn(fake, namespace):
    async with client(fake, namespace) as sdk:
        reasoning = {"effort": "low", "summary": "auto"}
        first = await sdk.responses.create(model="anthropic", input="Think", reasoning=reasoning)
        (item,) = [i for i in first.output if i.type == "reasoning"]
        assert item.summary and item.encrypted_content
        assert first.usage.output_tokens_details.reasoning_tokens > 0
        async with sdk.responses.stream(
            model="anthropic", input="Think", reasoning=reasoning
        ) as stream:
            kinds = [event.type async for event in stream]
        assert "response.reasoning_summary_text.delta" in kinds
        fake.state.clear()
        await sdk.responses.create(
            model="anthropic", input="Again", previous_response_id=first.id, reasoning=reasoning
        )
        (sent,) = fake.state.requests
        assistant = sent.json["messages"][1]
        assert assistant["role"] == "assistant"
        assert assistant["content"][0]["type"] == "thinking"
        assert assistant["content"][0]["signature"]


async def test_what_cannot_be_translated_is_refused_by_name(fake, namespace):
    async with client(fake, namespace) as sdk:
        with pytest.raises(openai.BadRequestError) as builtin:
            await sdk.responses.create(
                model="anthropic", input="hi", tools=[{"type": "web_search"}]
            )
        assert "tools.web_search" in str(builtin.value)
        # background: true is run, streamed too (test_responses_background.py).
        # With drop_params the built-in tool is dropped (logged) and the call goes through.
        dropped = await sdk.responses.create(
            model="anthropic",
            input="hi",
            tools=[{"type": "web_search"}],
            extra_body={"drop_params": True},
        )
        assert dropped.status == "completed"


async def test_json_schema_and_max_output_tokens_reach_the_provider(fake, namespace):
    async with client(fake, namespace) as sdk:
        fake.state.clear()
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        await sdk.responses.create(
            model="openai",
            input="hi",
            max_output_tokens=64,
            temperature=0.2,
            text={"format": {"type": "json_schema", "name": "thing", "schema": schema}},
        )
        (sent,) = fake.state.requests
        assert sent.json["max_completion_tokens"] == 64
        assert sent.json["temperature"] == 0.2
        assert sent.json["response_format"]["json_schema"]["schema"] == schema


@pytest.mark.parametrize("target", INGRESS_TARGETS, ids=INGRESS_IDS)
async def test_upstream_failures_reach_the_sdk_as_its_errors(fake, namespace, target: Target):
    async with client(fake, namespace) as sdk:
        with pytest.raises(openai.RateLimitError):
            await sdk.responses.create(model=target.provider + "-429", input="hi")
        # A stream that breaks after it began ends with response.failed, as OpenAI's does.
        async with sdk.responses.stream(model=target.provider + "-broken", input="hi") as s:
            events = [event async for event in s]
        assert_failed_after_deltas(events)


def assert_failed_after_deltas(events: list[Any]) -> None:
    """The stream began (text deltas), then ended with response.failed: the response so
    far, status failed, its error; numbered on from the events before it."""
    kinds = [event.type for event in events]
    assert "response.output_text.delta" in kinds
    last = events[-1]
    assert last.type == "response.failed", kinds
    assert last.response.status == "failed"
    assert last.response.error is not None and last.response.error.message
    assert last.response.id == events[0].response.id
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_the_store_keeps_a_response_for_its_ttl_and_store_false_nothing(
    fake, namespace, redis: Redis
):
    """`responses_ttl_s` bounds the gateway's own store; the owner is a hash, never the key;
    `store: false` writes nothing at all."""
    config = translated_store_config(fake, namespace, {"responses_ttl_s": 600})
    async with asyncio.timeout(TIMEOUT_S), service(config) as ([door], _):
        sdk: Any = AsyncOpenAI(base_url=door.url + "/v1", api_key="sk-master-0123456789")
        async with sdk:
            kept = await sdk.responses.create(model="gpt-chat", input="Say hello")
            key = Keys(namespace).response(kept.id)
            assert 0 < await redis.ttl(key) <= 600
            stored: dict[bytes, bytes] = await redis.hgetall(key)  # type: ignore[misc]
            assert stored and not any(b"sk-master" in value for value in stored.values())
            unkept = await sdk.responses.create(model="gpt-chat", input="Say hello", store=False)
            prefix = Keys(namespace).responses(unkept.id[5:21])
            assert [k async for k in redis.scan_iter(match=prefix + "*")] == []
