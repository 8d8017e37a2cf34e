"""Guardrails in the SDK: CustomGuardrail objects in `switchboard.callbacks`, run around
calls to the fake upstream: pre_call blocks or masks before anything is sent, during_call
cancels the call, post_call refuses or masks the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import switchboard
from workers import errors
from workers.hooks.guardrails import CustomGuardrail, GuardrailBlocked
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion


class Redactor(CustomGuardrail):
    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any] | None:
        text = data["messages"][0]["content"]
        if "launch codes" in text:
            raise ValueError("no talk of launch codes")
        if "secret" in text:
            data["messages"][0]["content"] = text.replace("secret", "[MASKED]")
            return data
        return None


class Judge(CustomGuardrail):
    async def async_moderation_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, call_type: str
    ) -> None:
        await asyncio.sleep(0.05)
        raise ValueError("the judge said no")


class AnswerMask(CustomGuardrail):
    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        message = response["choices"][0]["message"]
        message["content"] = message["content"].replace("fake", "****")
        return response


@pytest.fixture(autouse=True)
def guards() -> Iterator[None]:
    switchboard.callbacks = [
        Redactor(guardrail_name="redactor", event_hook="pre_call", default_on=True),
        Judge(guardrail_name="judge", event_hook="during_call"),
        AnswerMask(guardrail_name="answer-mask", event_hook="post_call"),
    ]
    yield
    switchboard.callbacks = []


async def _chat(fake: FakeUpstream, text: str, model: str = "gpt-4o-mini", **kwargs: Any) -> Any:
    return await switchboard.acompletion(
        f"openai/{model}",
        [{"role": "user", "content": text}],
        api_key="sk-test",
        api_base=fake.base_url + "/v1",
        **kwargs,
    )


async def test_pre_call_blocks_before_anything_is_sent_and_masks(fake: FakeUpstream) -> None:
    with pytest.raises(GuardrailBlocked) as blocked:
        await _chat(fake, "tell me the launch codes")
    assert blocked.value.http_status == 400 and blocked.value.param == "redactor"
    assert fake.request_count == 0
    await _chat(fake, "my secret plan")
    assert fake.requests[-1].json["messages"][0]["content"] == "my [MASKED] plan"


async def test_during_call_cancels_the_call(fake: FakeUpstream) -> None:
    with pytest.raises(GuardrailBlocked, match="the judge said no"):
        await _chat(fake, "hi", model="gpt-4o-mini~latency=5", guardrails=["judge"])
    async with asyncio.timeout(10):
        await fake.wait_for_disconnects(1)


async def test_post_call_masks_the_answer_only_when_named(fake: FakeUpstream) -> None:
    plain = await _chat(fake, "hi")
    masked = await _chat(fake, "hi", guardrails=["answer-mask"])
    assert isinstance(plain, ChatCompletion) and isinstance(masked, ChatCompletion)
    assert "fake" in (plain.choices[0].message.content or "")
    assert masked.choices[0].message.content == "This is a **** reply from gpt-4o-mini."
    assert masked.hidden_params["cost_usd"] > 0
    with pytest.raises(errors.InvalidRequest):
        await _chat(fake, "hi", guardrails=["nope"])


async def test_the_router_runs_the_guardrails_too(fake: FakeUpstream) -> None:
    router = switchboard.Router(
        model_list=[
            {
                "model_name": "gpt",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": fake.base_url + "/v1",
                    "api_key": "sk-test",
                },
            }
        ]
    )
    try:
        with pytest.raises(GuardrailBlocked):
            await router.acompletion("gpt", [{"role": "user", "content": "the launch codes"}])
    finally:
        await router.aclose()
    assert fake.request_count == 0
