"""`~auto`, the demo model's behaviour (issue #16): tool calls when tools are given, valid
JSON when response_format asks for it; parsed by the official openai SDK."""

from __future__ import annotations

import json
from typing import Any

import openai
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
)

from workers.testing.server import FakeUpstream

MODEL = "gpt-4o-mini~auto"
ASK: list[ChatCompletionMessageParam] = [{"role": "user", "content": "weather in Paris?"}]
TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


async def test_auto_calls_a_tool_then_answers_its_result(fake: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="sk-test")
    first = await client.chat.completions.create(model=MODEL, messages=ASK, tools=[TOOL])
    calls = first.choices[0].message.tool_calls
    assert calls and calls[0].type == "function"
    call = calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "get_weather"
    assert first.choices[0].finish_reason == "tool_calls"
    followed: list[ChatCompletionMessageParam] = [
        *ASK,
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = await client.chat.completions.create(model=MODEL, messages=followed, tools=[TOOL])
    await client.close()
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls


async def test_auto_answers_valid_json_whole_and_streamed(fake: FakeUpstream) -> None:
    client = openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="sk-test")
    whole = await client.chat.completions.create(
        model=MODEL, messages=ASK, response_format={"type": "json_object"}
    )
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "celsius": {"type": "number"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"enum": ["sun", "rain"]},
        },
        "required": ["city", "celsius", "tags", "kind"],
    }
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    await client.close()
    assert isinstance(json.loads(whole.choices[0].message.content or ""), dict)
    structured = json.loads(text)
    assert set(structured) == {"city", "celsius", "tags", "kind"}
    assert structured["kind"] == "sun" and isinstance(structured["tags"], list)
