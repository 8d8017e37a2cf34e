"""Guardrails through a real front door, Redis and worker: pre_call blocks before anything
is queued, masking rewrites what goes upstream, during_call cancels the provider call,
post_call refuses or masks an answer; each block a 400 naming the guardrail."""

from __future__ import annotations

import asyncio
import textwrap
from typing import Any

import aiohttp
import orjson
import pytest

from tests.broker.harness import make_config, post, read_sse, service
from workers.hooks.guardrail_builtins import PiiGuard, iban_ok, luhn_ok
from workers.settings.hooks import GuardrailParams
from workers.testing.server import FakeUpstream

GUARDRAILS = """\
guardrails:
  - guardrail_name: no-secrets-talk
    litellm_params:
      {guardrail: keywords, mode: pre_call, default_on: true, keywords: [launch codes]}
  - guardrail_name: pii-mask
    litellm_params: {guardrail: pii, mode: pre_call, default_on: true, action: mask}
  - guardrail_name: short-only
    litellm_params: {guardrail: max_input_tokens, mode: pre_call, max_input_tokens: 50}
  - guardrail_name: no-fake-answers
    litellm_params: {guardrail: regex, mode: post_call, patterns: ["fake reply"]}
  - guardrail_name: mask-answers
    litellm_params: {guardrail: regex, mode: post_call, action: mask, patterns: ["fake"]}
  - guardrail_name: strict-judge
    litellm_params: {guardrail: llm_judge, mode: pre_call, model: gpt-test, block_if: fake reply}
  - guardrail_name: lenient-judge
    litellm_params: {guardrail: llm_judge, mode: during_call, model: gpt-test}
  - guardrail_name: judge
    litellm_params:
      guardrail: tests.broker.callback_targets.Judge
      mode: during_call
      params: {delay_s: 0.05}
"""


SLOWER = """\
- model_name: slower
  litellm_params:
    model: openai/gpt-4o-mini~latency=5
    api_base: {base}
    api_key: sk-fake
"""


def _config(fake: FakeUpstream, namespace: str, extra: str = "", **kwargs: Any) -> Any:
    base = fake.base_url + "/v1"
    return make_config(
        base,
        namespace,
        **kwargs,
        general=textwrap.dedent(GUARDRAILS) + extra,
        extra_models=SLOWER.format(base=base),
    )


def _body(text: str, model: str = "gpt-test", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


async def test_a_pre_call_block_is_a_400_and_nothing_goes_upstream(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        status, body, _ = await post(http, door.url, _body("tell me the LAUNCH CODES"))
        async with http.get(door.url + "/metrics") as scraped:
            metrics = await scraped.text()
    assert status == 400
    error = body["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "guardrail_blocked"
    assert error["param"] == "no-secrets-talk" and "banned keyword" in error["message"]
    assert fake.request_count == 0
    assert (
        'switchboard_guardrail_checks_total{guardrail="no-secrets-talk",result="blocked"} 1.0'
        in metrics
    )


async def test_pii_is_masked_before_the_request_goes_upstream(
    fake: FakeUpstream, namespace: str
) -> None:
    text = (
        "mail ann@example.com, card 4111 1111 1111 1111, not a card 4111 1111 1111 1112, "
        "iban GB82 WEST 1234 5698 7654 32, key sk-abcdefghijklmnopqrstuvwx, call +44 20 7946 0958"
    )
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        status, _, _ = await post(http, door.url, _body(text))
    assert status == 200
    sent = fake.requests[-1].json["messages"][0]["content"]
    assert "ann@example.com" not in sent and "[EMAIL]" in sent
    assert "4111 1111 1111 1111" not in sent and "[CREDIT_CARD]" in sent
    assert "4111 1111 1111 1112" in sent  # fails the Luhn check: not a card
    assert "[IBAN]" in sent and "[SECRET]" in sent and "[PHONE]" in sent


async def test_request_named_guardrails_run_only_when_named(
    fake: FakeUpstream, namespace: str
) -> None:
    long_text = "word " * 400
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        status, _, _ = await post(http, door.url, _body(long_text))
        assert status == 200
        status, body, _ = await post(http, door.url, _body(long_text, guardrails=["short-only"]))
        assert status == 400 and body["error"]["param"] == "short-only"
        status, body, _ = await post(http, door.url, _body("hi", guardrails=["nope"]))
        assert status == 400 and body["error"]["param"] == "guardrails"
    # The request's guardrails list never reaches the provider.
    assert all("guardrails" not in r.json for r in fake.requests)


async def test_post_call_refuses_or_masks_the_answer(fake: FakeUpstream, namespace: str) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        status, body, _ = await post(http, door.url, _body("hi", guardrails=["no-fake-answers"]))
        assert status == 400 and body["error"]["param"] == "no-fake-answers"
        status, body, _ = await post(http, door.url, _body("hi", guardrails=["mask-answers"]))
    assert status == 200
    assert (
        body["choices"][0]["message"]["content"] == "This is a [REDACTED] reply from gpt-4o-mini."
    )


async def test_a_during_call_block_cancels_the_provider_call(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        status, body, _ = await post(
            http, door.url, _body("something forbidden", model="slower", guardrails=["judge"])
        )
        assert status == 400 and body["error"]["param"] == "judge"
        assert "the judge said no" in body["error"]["message"]
        # The call had started upstream; the block stopped it there.
        async with asyncio.timeout(10):
            await fake.wait_for_disconnects(1)
        status, _, _ = await post(http, door.url, _body("fine", guardrails=["judge"]))
        assert status == 200


def test_luhn_and_iban_checks() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("write to bob@example.org", "email"),
        ("AKIAIOSFODNN7EXAMPLE is my key", "secret"),
        ("ring 555-0100 now", None),  # too few digits for a phone number
        ("order 12345", None),
    ],
)
def test_pii_detection(text: str, found: str | None) -> None:
    guard = PiiGuard(GuardrailParams(guardrail="pii"))
    result = guard.find(text)
    assert (result is None) if found is None else (found in (result or ""))


async def test_a_cached_answer_never_skips_a_guardrail_the_request_names(
    fake: FakeUpstream, namespace: str
) -> None:
    config = _config(fake, namespace, "litellm_settings:\n  cache: true\n")
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        for _ in range(50):
            status, _, response = await post(http, door.url, _body("hi"))
            if response.headers["x-switchboard-cache"] == "hit":
                break
        assert response.headers["x-switchboard-cache"] == "hit"
        status, body, _ = await post(http, door.url, _body("hi", guardrails=["no-fake-answers"]))
    assert status == 400 and body["error"]["param"] == "no-fake-answers"


async def test_post_call_on_a_stream_masks_chunks_and_checks_the_whole_text(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        masked = _body("hi", stream=True, guardrails=["mask-answers"])
        async with http.post(door.url + "/v1/chat/completions", json=masked) as response:
            events = await read_sse(response)
        text = "".join(
            orjson.loads(data)["choices"][0]["delta"].get("content") or ""
            for _, data in events
            if data != "[DONE]" and orjson.loads(data)["choices"]
        )
        assert events[-1][1] == "[DONE]"
        assert "fake" not in text and "[REDACTED]" in text
        refused = _body("hi", stream=True, guardrails=["no-fake-answers"])
        async with http.post(door.url + "/v1/chat/completions", json=refused) as response:
            events = await read_sse(response)
    last = orjson.loads(events[-1][1])
    assert last["error"]["code"] == "guardrail_blocked"
    assert last["error"]["param"] == "no-fake-answers"
    assert all(data != "[DONE]" for _, data in events)


async def test_an_llm_judge_asks_a_model_group_through_the_queue(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        status, body, _ = await post(http, door.url, _body("hi", guardrails=["strict-judge"]))
        assert status == 400 and body["error"]["param"] == "strict-judge"
        assert "fake reply" in body["error"]["message"]
        # Only the judge's question went upstream, with its instructions and the text.
        [asked] = fake.requests
        assert asked.json["messages"][0]["role"] == "system"
        assert asked.json["messages"][1]["content"] == "hi"
        status, _, _ = await post(http, door.url, _body("hello", guardrails=["lenient-judge"]))
    assert status == 200 and fake.request_count == 3


async def test_a_keys_guardrails_run_on_every_request_it_makes(
    fake: FakeUpstream, namespace: str
) -> None:
    keys = (
        "[{alias: strict, key: sk-strict-0123456789, guardrails: [short-only]},"
        " {alias: loose, key: sk-loose-0123456789}]"
    )
    long_body = _body("word " * 400)
    async with (
        service(_config(fake, namespace, settings={"api_keys": keys})) as ([door], _),
        aiohttp.ClientSession() as http,
    ):
        strict = {"Authorization": "Bearer sk-strict-0123456789"}
        status, body, _ = await post(http, door.url, long_body, headers=strict)
        assert status == 400 and body["error"]["param"] == "short-only"
        loose = {"Authorization": "Bearer sk-loose-0123456789"}
        status, _, _ = await post(http, door.url, long_body, headers=loose)
        assert status == 200
