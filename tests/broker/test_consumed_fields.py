"""Fields LiteLLM consumes itself (`metadata`, `caching`, `tags`, ...) are
kept by the gateway and never forwarded as sent; LiteLLM's `metadata` works with every
provider (issue #16)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

import switchboard
from tests.broker.harness import service
from tests.broker.routing_setup import HELLO, deployment, routing_config
from workers.params import CONSUMED_FIELDS
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion

LITELLM_FIELDS: dict[str, Any] = {
    "metadata": {"user_id": "user-123", "project": "evalcheck", "tags": ["teamA"]},
    "caching": True,
    "cache": {"no-cache": True},
    "tags": ["teamA"],
    "guardrails": ["pii"],
    "context_window_fallback_dict": {"a": "b"},
}


def models(fake_url: str) -> list[dict[str, Any]]:
    anthropic = {
        "model_name": "claude",
        "litellm_params": {
            "model": "anthropic/claude-sonnet-4-5",
            "api_base": fake_url,
            "api_key": "sk-ant-fake",
        },
    }
    return [deployment("gpt", fake_url + "/v1", "gpt-4o-mini"), anthropic]


@pytest.mark.parametrize("group", ["gpt", "claude"])
async def test_litellm_request_fields_are_consumed_not_forwarded(
    fake: FakeUpstream, namespace: str, group: str
) -> None:
    config = routing_config(namespace, models(fake.base_url))
    body = {"model": group, "messages": HELLO, **LITELLM_FIELDS}
    async with service(config) as (doors, _), aiohttp.ClientSession() as session:
        async with session.post(doors[0].url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200, await response.text()
    sent = fake.state.requests[0].json
    forwarded = set(LITELLM_FIELDS) & set(sent)
    if group == "claude":
        # Anthropic's metadata.user_id is the same thing as LiteLLM's: it goes on, alone.
        assert sent["metadata"] == {"user_id": "user-123"}
        forwarded.discard("metadata")
    assert not forwarded


async def test_the_sdk_takes_litellm_metadata_for_every_provider(fake: FakeUpstream) -> None:
    for model, base in (
        ("anthropic/claude-sonnet-4-5", fake.base_url),
        ("openai/gpt-4o-mini", fake.base_url + "/v1"),
        ("gemini/gemini-2.5-flash", fake.base_url),
    ):
        response = await switchboard.acompletion(
            model=model,
            messages=HELLO,
            api_base=base,
            api_key="sk-fake",
            metadata={"user_id": "user-123", "project": "evalcheck"},
        )
        assert isinstance(response, ChatCompletion) and response.choices[0].message.content
    assert not any("project" in str(r.json.get("metadata", "")) for r in fake.state.requests)


def test_the_consumed_list_names_litellm_fields() -> None:
    # mock_response is consumed too, by answering (tests/broker/test_mock_params.py).
    assert {*LITELLM_FIELDS, "mock_response", "mock_timeout"} <= CONSUMED_FIELDS
