"""The two agent loops the issue names, end to end through a real `switchboard up`: a
Claude-Code-like Messages tool loop (assistant tool_use -> user tool_result -> final text,
streamed) and a Codex-like Responses loop (function_call -> function_call_output through
previous_response_id, streamed), for each provider family, and the Messages loop to Claude
on Bedrock natively."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from tests.broker.ingress.setup import BEDROCK_CLAUDE, GROUPS, INGRESS_TARGETS
from tests.broker.providers_setup import (
    AWS_CONFIG_ENV,
    Target,
    config_text,
    no_ambient_aws,  # noqa: F401 (autouse fixture)
    switchboard_up,
)
from tests.redis_helpers import REDIS_URL

TOOLS_ANTHROPIC = [
    {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}},
]
TOOLS_RESPONSES = [
    {"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
]


async def claude_code_loop(sdk: Any, target: Target) -> None:
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    async with sdk.messages.stream(
        model=target.provider + "-tools", max_tokens=256, messages=history, tools=TOOLS_ANTHROPIC
    ) as stream:
        turn = await stream.get_final_message()
    assert turn.stop_reason == "tool_use"
    history.append({"role": "assistant", "content": [b.model_dump() for b in turn.content]})
    history.append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": b.id, "content": "sunny"}
                for b in turn.content
                if b.type == "tool_use"
            ],
        }
    )
    async with sdk.messages.stream(
        model=target.provider, max_tokens=256, messages=history, tools=TOOLS_ANTHROPIC
    ) as stream:
        texts = [text async for text in stream.text_stream]
    assert "".join(texts) == target.reply_text


async def codex_loop(sdk: Any, target: Target) -> None:
    async with sdk.responses.stream(
        model=target.provider + "-tools", input="Weather in Paris?", tools=TOOLS_RESPONSES
    ) as stream:
        first = await stream.get_final_response()
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls
    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": "sunny"} for c in calls
    ]
    async with sdk.responses.stream(
        model=target.provider, input=outputs, previous_response_id=first.id, tools=TOOLS_RESPONSES
    ) as stream:
        final = await stream.get_final_response()
    assert final.output_text == target.reply_text


async def test_agent_loops_through_switchboard_up(fake, namespace, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(config_text(fake.base_url, namespace, GROUPS))
    environ = {**os.environ, **AWS_CONFIG_ENV, "REDIS_URL": REDIS_URL}
    async with switchboard_up(config, environ) as url:
        anthropic_sdk: Any = AsyncAnthropic(base_url=url, api_key="sk-x", max_retries=0)
        openai_sdk: Any = AsyncOpenAI(base_url=url + "/v1", api_key="sk-x", max_retries=0)
        async with anthropic_sdk, openai_sdk, asyncio.timeout(60):
            for target in INGRESS_TARGETS:
                await claude_code_loop(anthropic_sdk, target)
                await codex_loop(openai_sdk, target)
            # Claude on Bedrock natively (InvokeModel): the `bedrock-claude` groups.
            await claude_code_loop(
                anthropic_sdk, BEDROCK_CLAUDE._replace(provider="bedrock-claude")
            )
