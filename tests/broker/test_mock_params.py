"""LiteLLM's mock parameters (issue #16): `mock_response` and `mock_timeout` on deployments,
`mock_response` on requests, through the service and the SDK; the provider is never called."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai
from openai.types.chat import ChatCompletionMessageParam

import switchboard
from tests.broker.harness import service
from tests.broker.routing_setup import HELLO, deployment, routing_config
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]


def models(base: str) -> list[dict[str, Any]]:
    return [
        deployment("canned", base, "gpt-4o-mini", mock_response="A canned answer."),
        deployment("slow", base, "gpt-4o-mini", mock_timeout=True),
        deployment("real", base, "gpt-4o-mini"),
    ]


async def test_mock_params_answer_without_calling_the_provider(
    fake: FakeUpstream, namespace: str
) -> None:
    config = routing_config(namespace, models(fake.base_url + "/v1"))
    async with service(config) as (doors, _):
        client = openai.AsyncOpenAI(base_url=doors[0].url + "/v1", api_key="sk-x", max_retries=0)
        canned = await client.chat.completions.create(model="canned", messages=MESSAGES)
        stream = await client.chat.completions.create(
            model="canned", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        try:
            await client.chat.completions.create(model="slow", messages=MESSAGES)
            timed_out = None
        except openai.APIStatusError as exc:
            timed_out = exc.status_code
        async with aiohttp.ClientSession() as session:
            body = {"model": "real", "messages": HELLO, "mock_response": "From the body."}
            async with session.post(doors[0].url + "/v1/chat/completions", json=body) as r:
                requested = await r.json()
        await client.close()
    assert canned.choices[0].message.content == "A canned answer."
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "A canned answer."
    )
    assert chunks[-1].usage is not None
    assert timed_out == 408
    assert requested["choices"][0]["message"]["content"] == "From the body."
    assert fake.state.request_count == 0


async def test_the_sdk_honors_a_calls_mock_response(fake: FakeUpstream) -> None:
    reply = await switchboard.acompletion(
        model="openai/gpt-4o-mini",
        messages=HELLO,
        api_base=fake.base_url + "/v1",
        api_key="sk-x",
        mock_response="Mocked.",
    )
    assert isinstance(reply, ChatCompletion) and reply.choices[0].message.content == "Mocked."
    assert fake.state.request_count == 0
