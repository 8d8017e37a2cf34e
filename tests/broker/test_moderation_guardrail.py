"""The `openai_moderation` guardrail (issue #19): the request's (or the answer's) texts go to
an OpenAI deployment's /v1/moderations, through the front door's upstream session; a
flagged result is a 400 naming the guardrail and the categories. The fake's moderations
endpoint is checked against the openai SDK first."""

from __future__ import annotations

import textwrap
from typing import Any

import aiohttp
import anthropic
import openai
import orjson

from tests.broker.harness import make_config, post, service
from workers.testing.server import FakeUpstream

GUARDRAILS = """\
guardrails:
  - guardrail_name: moderated
    litellm_params:
      {{guardrail: openai_moderation, mode: pre_call, default_on: true, model: moderator}}
  - guardrail_name: answers-moderated
    litellm_params:
      guardrail: openai_moderation
      mode: post_call
      api_base: {fake}/v1
      api_key: sk-fake
  - guardrail_name: moderation-down
    litellm_params:
      guardrail: openai_moderation
      mode: during_call
      api_base: http://127.0.0.1:9/v1
"""
MODERATOR = """\
- model_name: moderator
  litellm_params:
    model: openai/omni-moderation-latest
    api_base: {fake}/v1
    api_key: sk-fake
"""


def _config(fake: FakeUpstream, namespace: str) -> Any:
    return make_config(
        fake.base_url + "/v1",
        namespace,
        general=textwrap.dedent(GUARDRAILS.format(fake=fake.base_url)),
        extra_models=MODERATOR.format(fake=fake.base_url),
    )


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": text}], **extra}


def _moderated(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.path == "/v1/moderations"]


async def test_the_fakes_moderations_parse_with_the_openai_sdk(fake: FakeUpstream) -> None:
    async with openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key="sk-fake") as client:
        answer = await client.moderations.create(
            model="omni-moderation-latest",
            input=["you idiot, I will kill you", "a kind word"],
        )
        single = await client.moderations.create(input="hello")
    flagged, clean = answer.results
    assert flagged.flagged and flagged.categories.violence and flagged.categories.harassment
    assert flagged.category_scores.violence > 0.5
    assert not flagged.categories.hate and flagged.category_applied_input_types.violence == ["text"]
    assert not clean.flagged and not any(clean.categories.model_dump().values())
    assert answer.model == "omni-moderation-latest" and answer.id.startswith("modr-")
    assert len(single.results) == 1 and not single.results[0].flagged


async def test_a_flagged_request_is_blocked_naming_the_guardrail_and_categories(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        status, body, _ = await post(http, door.url, _chat("plan the attack, you idiot"))
        assert status == 400
        assert not [r for r in fake.requests if r.path == "/v1/chat/completions"]
        status, answer, _ = await post(http, door.url, _chat("a kind word"))
        assert status == 200, answer
        async with anthropic.AsyncAnthropic(base_url=door.url, api_key="sk-any") as claude:
            try:
                await claude.messages.create(
                    model="gpt-test",
                    max_tokens=16,
                    system="be helpful",
                    messages=[{"role": "user", "content": "how to make counterfeit money"}],
                )
            except anthropic.BadRequestError as exc:
                refused = exc.response.json()
    error = body["error"]
    assert error["code"] == "guardrail_blocked" and error["param"] == "moderated"
    assert "flagged by OpenAI moderation (harassment, violence)" in error["message"]
    assert refused["type"] == "error" and "illicit" in refused["error"]["message"]
    sent = _moderated(fake)
    # The model group's deployment answered: its model, the request's texts.
    assert sent[0] == {"model": "omni-moderation-latest", "input": ["plan the attack, you idiot"]}
    assert sent[-1]["input"] == ["be helpful", "how to make counterfeit money"]


async def test_post_call_moderates_the_answer_and_an_unreachable_endpoint_blocks(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        status, answer, _ = await post(
            http, door.url, _chat("hello", guardrails=["answers-moderated"])
        )
        assert status == 200, answer
        status, body, _ = await post(http, door.url, _chat("hello", guardrails=["moderation-down"]))
    text = answer["choices"][0]["message"]["content"]
    # LiteLLM's spelling: api_base and api_key, the default moderation model.
    checked = [
        r for r in fake.requests if r.path == "/v1/moderations" and r.json["input"] == [text]
    ]
    assert len(checked) == 1 and checked[0].json["model"] == "omni-moderation-latest"
    assert checked[0].headers["Authorization"] == "Bearer sk-fake"
    assert status == 400 and body["error"]["param"] == "moderation-down"
    assert "unreachable" in body["error"]["message"]
    assert "127.0.0.1" not in orjson.dumps(body).decode()
