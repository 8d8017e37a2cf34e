"""The Ollama fake speaks what the official `ollama` Python client parses."""

from __future__ import annotations

import ollama
import pytest

from workers.testing.server import FakeUpstream


async def test_the_ollama_client_parses_chat_generate_and_embed(fake: FakeUpstream) -> None:
    async with ollama.AsyncClient(host=fake.base_url) as client:
        await _chat_generate_embed(client)


async def _chat_generate_embed(client: ollama.AsyncClient) -> None:
    messages = [{"role": "user", "content": "hello"}]
    whole = await client.chat(model="llama3.1", messages=messages)
    assert whole.message.content == "This is a fake reply from llama3.1."
    assert whole.done and whole.prompt_eval_count and whole.eval_count
    parts = [
        part async for part in await client.chat(model="llama3.1", messages=messages, stream=True)
    ]
    assert "".join(p.message.content or "" for p in parts) == whole.message.content
    assert parts[-1].done and parts[-1].done_reason == "stop"
    generated = await client.generate(model="llama3.1", prompt="Once")
    assert generated.response == "This is a fake reply from llama3.1."
    streamed = [p async for p in await client.generate(model="llama3.1", prompt="x", stream=True)]
    assert "".join(p.response or "" for p in streamed) == generated.response
    embedded = await client.embed(model="nomic-embed-text", input=["a", "b"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 768


async def test_the_ollama_client_parses_tool_calls_and_errors(fake: FakeUpstream) -> None:
    async with ollama.AsyncClient(host=fake.base_url) as client:
        await _tools_and_errors(client)


async def _tools_and_errors(client: ollama.AsyncClient) -> None:
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }
    reply = await client.chat(
        model="llama3.1~tools=1", messages=[{"role": "user", "content": "weather?"}], tools=[tool]
    )
    assert reply.message.tool_calls and reply.message.tool_calls[0].function.name == "get_weather"
    with pytest.raises(ollama.ResponseError) as failed:
        await client.chat(model="llama3.1~status=503", messages=[{"role": "user", "content": "x"}])
    assert failed.value.status_code == 503
