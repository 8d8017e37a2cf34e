"""What the Claude tests ask of the official `anthropic` client the same way, whoever serves
Claude (the gateway's Messages API on Anthropic, Vertex AI or Bedrock, or a provider's fake):
a Claude Code-like tool loop, a stream read to its end or its error, and the group's token
and cost metrics around one request."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import pytest
from anthropic import AsyncAnthropic, AsyncAnthropicBedrock, AsyncAnthropicVertex
from anthropic.types import Message, Usage

from tests.scrape import Scrape, scrape_url

HELLO: Any = [{"role": "user", "content": "Say hello"}]
TOOLS: Any = [
    {
        "name": "get_weather",
        "description": "weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


async def tool_loop(
    sdk: AsyncAnthropic, *, tools_model: str, model: str, also_say: list[Any] | None = None
) -> tuple[Message, list[dict[str, Any]]]:
    """assistant tool_use -> user tool_result (and `also_say`) -> final text, streamed, as
    Claude Code runs it: (the final answer, the tool results sent)."""
    history: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    async with sdk.messages.stream(
        model=tools_model, max_tokens=256, messages=history, tools=TOOLS
    ) as stream:
        turn = await stream.get_final_message()
    assert turn.stop_reason == "tool_use"
    history.append({"role": "assistant", "content": [b.model_dump() for b in turn.content]})
    results = [
        {"type": "tool_result", "tool_use_id": b.id, "content": "sunny, 21C"}
        for b in turn.content
        if b.type == "tool_use"
    ]
    history.append({"role": "user", "content": [*results, *(also_say or [])]})
    async with sdk.messages.stream(
        model=model, max_tokens=256, messages=history, tools=TOOLS
    ) as stream:
        answer = await stream.get_final_message()
    return answer, results


async def read_stream(
    sdk: AsyncAnthropic | AsyncAnthropicVertex | AsyncAnthropicBedrock, model: str, messages: Any
) -> None:
    """A streamed message read to its end, or to the error the SDK raises for it."""
    async with sdk.messages.stream(model=model, max_tokens=64, messages=messages) as stream:
        async for _ in stream:
            pass


async def error_bodies(sdk: AsyncAnthropic, group: str) -> tuple[Any, Any]:
    """The error bodies the SDK raises for `group`-429 (a RateLimitError) and for the
    stream of `group`-broken, which fails midway (an APIStatusError)."""
    with pytest.raises(anthropic.RateLimitError) as limited:
        await sdk.messages.create(model=group + "-429", max_tokens=64, messages=HELLO)
    with pytest.raises(anthropic.APIStatusError) as failed:
        await read_stream(sdk, group + "-broken", HELLO)
    return limited.value.body, failed.value.body


def counted(scrape: Scrape, group: str) -> tuple[float, float, float]:
    """The group's prompt tokens, completion tokens and cost, as its metrics say."""

    def tokens(kind: str) -> float:
        return sum(
            v
            for (name, labels), v in scrape.values.items()
            if name == "switchboard_tokens_total"
            and ("model_group", group) in labels
            and ("kind", kind) in labels
        )

    cost = sum(
        v
        for (name, labels), v in scrape.values.items()
        if name == "switchboard_cost_usd_total" and ("model_group", group) in labels
    )
    return tokens("prompt"), tokens("completion"), cost


async def counted_for_one(
    sdk: AsyncAnthropic, group: str, *, stream: bool
) -> tuple[Usage, tuple[float, float, float]]:
    """One request to `group` through the gateway `sdk` talks to: the usage its reply
    reported, and what the group's metrics (prompt, completion, cost) grew by."""
    url = str(sdk.base_url).rstrip("/")
    async with aiohttp.ClientSession() as session:
        before = counted(await scrape_url(session, url + "/metrics"), group)
        if stream:
            async with sdk.messages.stream(model=group, max_tokens=64, messages=HELLO) as events:
                usage = (await events.get_final_message()).usage
        else:
            usage = (await sdk.messages.create(model=group, max_tokens=64, messages=HELLO)).usage
        after = counted(await scrape_url(session, url + "/metrics"), group)
    prompt, completion, cost = (a - b for a, b in zip(after, before, strict=True))
    return usage, (prompt, completion, cost)
