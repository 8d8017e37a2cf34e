"""Thinking reaches each API's own shape through the translation where the target has it
(issue #18: "thinking/reasoning where the target has it"): a Gemini or Bedrock Converse
deployment's thoughts come back to /v1/messages as `thinking` blocks (`thinking_delta` when
streamed) and to /v1/responses as a `reasoning` item's summary
(`response.reasoning_summary_text.delta`), with the reasoning tokens where the provider
counts them apart (Gemini). Anthropic's own
are proven natively (test_messages_api.py, test_messages_native.py) and through the
Responses translation (test_responses_api.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.broker.ingress.setup import INGRESS_TARGETS, TIMEOUT_S, gateway
from tests.broker.providers_setup import (
    Target,
    no_ambient_aws,  # noqa: F401 (autouse fixture)
)

THINKERS = [t for t in INGRESS_TARGETS if t.provider in ("gemini", "bedrock")]
HELLO = [{"role": "user", "content": "Think, then say hello"}]
THINKING = {"type": "enabled", "budget_tokens": 1024}


@pytest.mark.parametrize("target", THINKERS, ids=[t.provider for t in THINKERS])
async def test_thoughts_come_back_as_thinking_and_reasoning(fake, namespace, target: Target):
    model = target.provider + "-thinking"
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        anthropic_sdk: Any = AsyncAnthropic(base_url=url, api_key="sk-switchboard", max_retries=0)
        openai_sdk: Any = AsyncOpenAI(base_url=url + "/v1", api_key="sk-switchboard", max_retries=0)
        async with anthropic_sdk, openai_sdk:
            message = await anthropic_sdk.messages.create(
                model=model, max_tokens=2048, messages=HELLO, thinking=THINKING
            )
            async with anthropic_sdk.messages.stream(
                model=model, max_tokens=2048, messages=HELLO, thinking=THINKING
            ) as stream:
                deltas = [e.delta.type async for e in stream if e.type == "content_block_delta"]
                streamed = await stream.get_final_message()
            assert "thinking_delta" in deltas
            for reply in (message, streamed):
                assert [b.type for b in reply.content] == ["thinking", "text"]
                assert reply.content[0].thinking and reply.content[1].text == target.reply_text

            reasoning = {"effort": "low", "summary": "auto"}
            response = await openai_sdk.responses.create(
                model=model, input="Think, then say hello", reasoning=reasoning
            )
            (item,) = [i for i in response.output if i.type == "reasoning"]
            assert item.summary and item.summary[0].text
            if target.provider == "gemini":  # thoughtsTokenCount; Converse counts thinking
                # in its outputTokens and reports no part of it apart
                assert response.usage.output_tokens_details.reasoning_tokens > 0
            assert response.output_text == target.reply_text
            async with openai_sdk.responses.stream(
                model=model, input="Think, then say hello", reasoning=reasoning
            ) as events:
                kinds = [event.type async for event in events]
            assert "response.reasoning_summary_text.delta" in kinds
