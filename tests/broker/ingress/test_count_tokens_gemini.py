"""/v1/messages/count_tokens for a Gemini deployment asks Gemini's own counter
(`models/{model}:countTokens`, the whole GenerateContentRequest: system instruction,
contents and tools), not the gateway's estimate; driven by the official `anthropic` SDK,
against the Gemini fake, whose count the answer must equal. A counter failure is an
Anthropic-shaped error."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
from anthropic import AsyncAnthropic

from tests.broker.ingress.setup import TIMEOUT_S, gateway
from tests.broker.providers_setup import no_ambient_aws  # noqa: F401 (autouse fixture)
from workers.testing.gemini_tokens import input_texts
from workers.testing.tokens import count_prompt_tokens

MESSAGES = [
    {"role": "user", "content": "What is the weather in Paris today, and should I take a coat?"}
]
TOOLS = [
    {
        "name": "get_weather",
        "description": "weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
SYSTEM = "You are a terse assistant who answers in one line."


async def test_gemini_counts_the_whole_request_itself(fake, namespace):
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        client: Any = AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
        async with client as sdk:
            fake.state.clear()
            raw = await sdk.messages.with_raw_response.count_tokens(
                model="gemini", system=SYSTEM, messages=MESSAGES, tools=TOOLS
            )
            counted = await raw.parse()
            assert raw.headers["x-switchboard-token-count"] == "provider"
            (sent,) = fake.state.requests
            assert sent.path.endswith(":countTokens")
            whole = sent.json["generateContentRequest"]
            assert whole["model"] == "models/" + sent.path.rpartition("/")[2].split(":")[0]
            assert whole["systemInstruction"]["parts"][0]["text"] == SYSTEM
            assert whole["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
            # The number is the fake's own (its tokenizer), not the gateway's estimate.
            assert counted.input_tokens == count_prompt_tokens(input_texts(whole))
            estimate = await sdk.messages.with_raw_response.count_tokens(
                model="openai", system=SYSTEM, messages=MESSAGES, tools=TOOLS
            )
            assert estimate.headers["x-switchboard-token-count"] == "estimate"
            assert (await estimate.parse()).input_tokens != counted.input_tokens


async def test_a_gemini_counter_failure_is_an_anthropic_error(fake, namespace):
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        client: Any = AsyncAnthropic(base_url=url, api_key="k", max_retries=0)
        async with client as sdk:
            with pytest.raises(anthropic.RateLimitError) as limited:
                await sdk.messages.count_tokens(model="gemini-429", messages=MESSAGES)
            body: Any = limited.value.body
            assert body["type"] == "error"
            assert body["error"]["type"] == "rate_limit_error"
