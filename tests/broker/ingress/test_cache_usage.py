"""Cache reads a provider reports reach each API's own usage fields through the
translation (issue #18: "usage incl. cache read/write tokens"): Anthropic's
`cache_read_input_tokens` (apart from `input_tokens`, as Anthropic counts) on /v1/messages,
and `input_tokens_details.cached_tokens` on /v1/responses, whole and streamed, for every
provider family of tests/broker/ingress/setup.py (each fake reports the cached part of the
prompt in its own wire format)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.broker.ingress.setup import INGRESS_IDS, INGRESS_TARGETS, TIMEOUT_S, gateway
from tests.broker.providers_setup import (
    Target,
    no_ambient_aws,  # noqa: F401 (autouse fixture)
)

CACHED = 4  # the `-cached` groups' `~cached=4`
PROMPT = "Say hello to everyone in the room, politely and in a few words"  # more than 4 tokens
HELLO = [{"role": "user", "content": PROMPT}]


@pytest.mark.parametrize("target", INGRESS_TARGETS, ids=INGRESS_IDS)
async def test_cache_reads_reach_messages_and_responses_usage(fake, namespace, target: Target):
    model = target.provider + "-cached"
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        anthropic_sdk: Any = AsyncAnthropic(base_url=url, api_key="sk-switchboard", max_retries=0)
        openai_sdk: Any = AsyncOpenAI(base_url=url + "/v1", api_key="sk-switchboard", max_retries=0)
        async with anthropic_sdk, openai_sdk:
            message = await anthropic_sdk.messages.create(
                model=model, max_tokens=256, messages=HELLO
            )
            async with anthropic_sdk.messages.stream(
                model=model, max_tokens=256, messages=HELLO
            ) as stream:
                streamed = await stream.get_final_message()
            for usage in (message.usage, streamed.usage):
                assert usage.cache_read_input_tokens == CACHED
                assert usage.input_tokens > 0  # the uncached rest, counted apart

            response = await openai_sdk.responses.create(model=model, input=PROMPT)
            async with openai_sdk.responses.stream(model=model, input=PROMPT) as events:
                final = await events.get_final_response()
            for usage in (response.usage, final.usage):
                assert usage.input_tokens_details.cached_tokens == CACHED
                assert usage.input_tokens > CACHED  # OpenAI's count includes the cached part


async def test_cache_writes_reach_messages_usage_through_bedrock_converse(fake, namespace):
    """A prompt written to the cache (Bedrock's `cacheWriteInputTokens`, on a Converse call the
    /v1/messages request was translated to, its `cache_control` as a `cachePoint`) is
    Anthropic's `cache_creation_input_tokens`, apart from `input_tokens`, whole and streamed."""
    system = [{"type": "text", "text": PROMPT, "cache_control": {"type": "ephemeral"}}]
    async with asyncio.timeout(TIMEOUT_S), gateway(fake, namespace) as url:
        sdk: Any = AsyncAnthropic(base_url=url, api_key="sk-switchboard", max_retries=0)
        async with sdk:
            message = await sdk.messages.create(
                model="bedrock", max_tokens=256, system=system, messages=HELLO
            )
            async with sdk.messages.stream(
                model="bedrock", max_tokens=256, system=system, messages=HELLO
            ) as stream:
                streamed = await stream.get_final_message()
    for usage in (message.usage, streamed.usage):
        assert usage.cache_creation_input_tokens > 0
        assert usage.cache_read_input_tokens == 0
        assert usage.input_tokens > 0  # the user turn after the cache point, counted apart
