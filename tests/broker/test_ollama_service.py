"""`ollama/` through the service with the official `openai` SDK: chat to /api/chat, legacy
completions to /api/generate, embeddings to /api/embed (issue #16)."""

from __future__ import annotations

from typing import Any

import openai

from tests.broker.harness import service
from tests.broker.routing_setup import routing_config
from workers.testing.server import FakeUpstream


def ollama(group: str, model: str, base: str) -> dict[str, Any]:
    return {"model_name": group, "litellm_params": {"model": f"ollama/{model}", "api_base": base}}


async def test_ollama_serves_chat_completions_and_embeddings_natively(
    fake: FakeUpstream, namespace: str
) -> None:
    base = fake.base_url
    models = [ollama("llama", "llama3.1", base), ollama("embed", "nomic-embed-text", base)]
    config = routing_config(namespace, models)
    async with service(config) as (doors, _):
        client = openai.AsyncOpenAI(base_url=doors[0].url + "/v1", api_key="sk-x")
        chat = await client.chat.completions.create(
            model="llama",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=50,
            temperature=0.1,
        )
        stream = await client.chat.completions.create(
            model="llama",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        text = await client.completions.create(model="llama", prompt="Once upon")
        vectors = await client.embeddings.create(model="embed", input=["a", "b"])
        await client.close()
    assert chat.choices[0].message.content == "This is a fake reply from llama3.1."
    assert chat.usage is not None and chat.usage.completion_tokens > 0
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == chat.choices[0].message.content
    assert chunks[-1].usage is not None
    assert text.choices[0].text == chat.choices[0].message.content
    assert len(vectors.data) == 2
    paths = [(r.path, r.json) for r in fake.state.requests]
    assert [p for p, _ in paths] == ["/api/chat", "/api/chat", "/api/generate", "/api/embed"]
    assert paths[0][1]["options"] == {"num_predict": 50, "temperature": 0.1}
    assert paths[0][1]["stream"] is False and paths[1][1]["stream"] is True
    assert paths[2][1]["prompt"] == "Once upon"
