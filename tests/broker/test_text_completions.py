"""POST /v1/completions through the service, with the official `openai` SDK (issue #16):
translated to chat for chat models, native for `text-completion-openai/`, streamed or not."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.broker.harness import service
from tests.broker.routing_setup import deployment, routing_config
from workers.testing.openai_completions import reply_text
from workers.testing.server import FakeUpstream


def models(base: str) -> list[dict[str, Any]]:
    native: dict[str, Any] = {
        "model_name": "instruct",
        "litellm_params": {
            "model": "text-completion-openai/gpt-3.5-turbo-instruct",
            "api_base": base,
            "api_key": "sk-fake",
        },
    }
    return [deployment("chat", base, "gpt-4o-mini"), native]


async def test_the_fake_legacy_endpoint_speaks_what_the_openai_sdk_parses(
    fake: FakeUpstream,
) -> None:
    client = openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="sk-fake")
    whole = await client.completions.create(model="davinci-002", prompt="Once upon a time")
    assert whole.choices[0].text == reply_text("Once upon a time")
    assert whole.usage is not None and whole.usage.completion_tokens > 0
    stream = await client.completions.create(
        model="davinci-002",
        prompt="Once upon a time",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    await client.close()
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("group", ["chat", "instruct"])
async def test_completions_are_served_whole_and_streamed(
    fake: FakeUpstream, namespace: str, group: str
) -> None:
    config = routing_config(namespace, models(fake.base_url + "/v1"))
    async with service(config) as (doors, _):
        client = openai.AsyncOpenAI(base_url=doors[0].url + "/v1", api_key="sk-x")
        whole = await client.completions.create(model=group, prompt="Say hi", max_tokens=20)
        stream = await client.completions.create(
            model=group, prompt="Say hi", stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        await client.close()
    assert whole.object == "text_completion" and whole.choices[0].text
    assert whole.usage is not None and whole.usage.total_tokens > 0
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage is not None
    sent = fake.state.requests[0]
    if group == "instruct":
        assert sent.path == "/v1/completions" and sent.json["prompt"] == "Say hi"
        assert whole.choices[0].text == reply_text("Say hi")
    else:
        assert sent.path == "/v1/chat/completions"
        assert sent.json["messages"] == [{"role": "user", "content": "Say hi"}]


async def test_a_chat_request_reaches_a_completions_model_as_its_prompt(
    fake: FakeUpstream, namespace: str
) -> None:
    config = routing_config(namespace, models(fake.base_url + "/v1"))
    async with service(config) as (doors, _):
        client = openai.AsyncOpenAI(base_url=doors[0].url + "/v1", api_key="sk-x")
        reply = await client.chat.completions.create(
            model="instruct", messages=[{"role": "user", "content": "Tell me"}]
        )
        await client.close()
    assert reply.choices[0].message.content == reply_text("Tell me")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"echo": True}, "echo"),
        ({"logprobs": 2}, "logprobs"),
        ({"suffix": "end"}, "suffix"),
        ({"best_of": 3}, "best_of"),
    ],
)
async def test_what_chat_cannot_express_is_refused_naming_the_field(
    fake: FakeUpstream, namespace: str, fields: dict[str, Any], param: str
) -> None:
    config = routing_config(namespace, models(fake.base_url + "/v1"))
    async with service(config, workers=0) as (doors, _):
        client = openai.AsyncOpenAI(base_url=doors[0].url + "/v1", api_key="sk-x")
        with pytest.raises(openai.BadRequestError) as refused:
            await client.completions.create(model="chat", prompt="x", **fields)
        with pytest.raises(openai.BadRequestError) as several:
            await client.completions.create(model="chat", prompt=["a", "b"])
        await client.close()
    assert refused.value.param == param
    assert several.value.param == "prompt"
