"""Guardrails and the response cache on every API the front door serves besides chat and
embeddings: legacy /v1/completions, Anthropic's /v1/messages and OpenAI's /v1/responses,
through a real front door, Redis and worker, each read by its official SDK. A block is a
400 in the API's own error shape; masking reaches the upstream; a cache hit is answered
without an upstream call, whole or as the API's own stream."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam

from tests.broker.harness import make_config, service
from workers.testing.server import FakeUpstream

GUARDRAILS = """\
litellm_settings:
  cache: true
guardrails:
  - guardrail_name: no-launch-codes
    litellm_params:
      {guardrail: keywords, mode: pre_call, default_on: true, keywords: [launch codes]}
  - guardrail_name: pii-mask
    litellm_params: {guardrail: pii, mode: pre_call, default_on: true, action: mask}
  - guardrail_name: no-fake-answers
    litellm_params: {guardrail: regex, mode: post_call, patterns: ["fake reply"]}
  - guardrail_name: mask-answers
    litellm_params: {guardrail: regex, mode: post_call, action: mask, patterns: ["fake"]}
  - guardrail_name: beside-the-call
    litellm_params: {guardrail: keywords, mode: during_call, keywords: [forbidden]}
"""
MODELS = """\
- model_name: claude
  litellm_params:
    model: anthropic/claude-sonnet-4-5
    api_base: {fake}
    api_key: sk-ant-fake
- model_name: gpt-native
  litellm_params:
    model: openai/gpt-4o-mini
    api_base: {fake}/v1
    api_key: sk-fake
    responses_api: native
"""
EMAIL = "write to ann@example.com please"


def _config(fake: FakeUpstream, namespace: str) -> Any:
    return make_config(
        fake.base_url + "/v1",
        namespace,
        general=textwrap.dedent(GUARDRAILS),
        extra_models=MODELS.format(fake=fake.base_url),
    )


@contextlib.asynccontextmanager
async def _clients(
    url: str, key: str = "sk-any"
) -> AsyncIterator[tuple[anthropic.AsyncAnthropic, openai.AsyncOpenAI]]:
    async with (
        anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0) as claude,
        openai.AsyncOpenAI(base_url=url + "/v1", api_key=key, max_retries=0) as client,
    ):
        yield claude, client


async def _until_hit(call: Callable[[], Awaitable[Any]]) -> Any:
    """The raw response of the first call the cache answers (a miss is stored in the
    background, after its client has the answer)."""
    for _ in range(50):
        raw = await call()
        if raw.headers["x-switchboard-cache"] == "hit":
            return raw
    raise AssertionError("never answered from the cache")


# ------------------------------------------------------------------------------ /v1/messages


@pytest.mark.parametrize("model", ["gpt-test", "claude"])
async def test_messages_blocks_in_anthropic_shape_and_masks_what_goes_upstream(
    fake: FakeUpstream, namespace: str, model: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), _clients(door.url) as (claude, _):
        with pytest.raises(anthropic.BadRequestError) as caught:
            await claude.messages.create(
                model=model,
                max_tokens=64,
                system="tell them the LAUNCH CODES",
                messages=[{"role": "user", "content": "hi"}],
            )
        assert fake.request_count == 0  # a pre_call block: nothing upstream
        await claude.messages.create(
            model=model,
            max_tokens=64,
            messages=[
                {"role": "user", "content": [{"type": "text", "text": EMAIL}]},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "and bob@example.org too"},
            ],
        )
    error = caught.value
    assert error.status_code == 400
    body = error.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "no-launch-codes" in body["error"]["message"]
    sent = fake.requests[-1].body.decode()
    assert "ann@example.com" not in sent and "bob@example.org" not in sent
    assert sent.count("[EMAIL]") == 2


@pytest.mark.parametrize("model", ["gpt-test", "claude"])
async def test_messages_post_call_masks_and_refuses_whole_and_streamed(
    fake: FakeUpstream, namespace: str, model: str
) -> None:
    hi: list[MessageParam] = [{"role": "user", "content": "hi"}]
    async with service(_config(fake, namespace)) as ([door], _), _clients(door.url) as (claude, _):
        masked = await claude.messages.create(
            model=model, max_tokens=64, messages=hi, extra_body={"guardrails": ["mask-answers"]}
        )
        async with claude.messages.stream(
            model=model, max_tokens=64, messages=hi, extra_body={"guardrails": ["mask-answers"]}
        ) as stream:
            streamed = await stream.get_final_message()
        with pytest.raises(anthropic.BadRequestError) as refused:
            await claude.messages.create(
                model=model,
                max_tokens=64,
                messages=hi,
                extra_body={"guardrails": ["no-fake-answers"]},
            )
        with pytest.raises(anthropic.APIStatusError) as ended:
            async with claude.messages.stream(
                model=model,
                max_tokens=64,
                messages=hi,
                extra_body={"guardrails": ["no-fake-answers"]},
            ) as stream:
                await stream.get_final_message()
    for message in (masked, streamed):
        text = message.content[0].text  # type: ignore[union-attr]
        assert "[REDACTED]" in text and "fake" not in text
    assert refused.value.response.json()["type"] == "error"
    # A stream refused at its end: Anthropic's error event, which the SDK raises.
    assert "no-fake-answers" in str(ended.value)


@pytest.mark.parametrize("model", ["gpt-test", "claude"])
async def test_messages_cache_hits_whole_and_as_anthropic_events(
    fake: FakeUpstream, namespace: str, model: str
) -> None:
    hi: list[MessageParam] = [{"role": "user", "content": "cache this message"}]
    async with service(_config(fake, namespace)) as ([door], _), _clients(door.url) as (claude, _):
        first = await claude.messages.with_raw_response.create(
            model=model, max_tokens=64, messages=hi
        )
        assert first.headers["x-switchboard-cache"] == "miss"
        calls = fake.request_count
        hit = await _until_hit(
            lambda: claude.messages.with_raw_response.create(
                model=model, max_tokens=64, messages=hi, metadata={"user_id": "another"}
            )
        )
        async with claude.messages.stream(model=model, max_tokens=64, messages=hi) as stream:
            events = [event.type async for event in stream]
            replayed = await stream.get_final_message()
        # Another answer for another system prompt: the key is what decides the answer.
        other = await claude.messages.with_raw_response.create(
            model=model, max_tokens=64, messages=hi, system="be terse"
        )
        assert fake.request_count == calls + 1
    original = await first.parse()
    assert (await hit.parse()).model_dump() == original.model_dump()
    assert [b.model_dump() for b in replayed.content] == [b.model_dump() for b in original.content]
    assert replayed.stop_reason == original.stop_reason and replayed.id == original.id
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_delta" in events
    assert other.headers["x-switchboard-cache"] == "miss"


async def test_a_streamed_messages_answer_is_stored_and_answers_a_whole_request(
    fake: FakeUpstream, namespace: str
) -> None:
    hi: list[MessageParam] = [{"role": "user", "content": "stream then ask whole"}]
    async with service(_config(fake, namespace)) as ([door], _), _clients(door.url) as (claude, _):
        async with claude.messages.stream(model="claude", max_tokens=64, messages=hi) as stream:
            streamed = await stream.get_final_message()
        calls = fake.request_count
        hit = await _until_hit(
            lambda: claude.messages.with_raw_response.create(
                model="claude", max_tokens=64, messages=hi
            )
        )
        assert fake.request_count == calls
    whole = await hit.parse()
    assert whole.content[0].text == streamed.content[0].text  # type: ignore[union-attr]
    assert whole.id == streamed.id and whole.stop_reason == streamed.stop_reason


# ------------------------------------------------------------------------------ /v1/responses


@pytest.mark.parametrize("model", ["gpt-test", "gpt-native"])
async def test_responses_blocks_in_openai_shape_and_masks_input_items(
    fake: FakeUpstream, namespace: str, model: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), _clients(door.url) as (_, client):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model=model, instructions="reveal the launch codes", input="hi"
            )
        assert fake.request_count == 0
        await client.responses.create(
            model=model,
            input=[
                {"role": "user", "content": [{"type": "input_text", "text": EMAIL}]},
                {"role": "user", "content": "and bob@example.org"},
            ],
        )
        with pytest.raises(openai.BadRequestError) as refused:
            await client.responses.create(
                model=model, input="hi", extra_body={"guardrails": ["no-fake-answers"]}
            )
        masked = await client.responses.create(
            model=model, input="hi", extra_body={"guardrails": ["mask-answers"]}
        )
    body = caught.value.response.json()
    assert body["error"]["code"] == "guardrail_blocked"
    assert body["error"]["param"] == "no-launch-codes"
    sent = fake.requests[-3].body.decode()
    assert "ann@example.com" not in sent and "bob@example.org" not in sent
    assert sent.count("[EMAIL]") == 2
    assert refused.value.response.json()["error"]["param"] == "no-fake-answers"
    assert "[REDACTED]" in masked.output_text and "fake" not in masked.output_text


@pytest.mark.parametrize("model", ["gpt-test", "gpt-native"])
async def test_responses_cache_hits_whole_and_as_responses_events(
    fake: FakeUpstream, namespace: str, model: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), _clients(door.url) as (_, client):
        first = await client.responses.with_raw_response.create(model=model, input="cache me")
        assert first.headers["x-switchboard-cache"] == "miss"
        calls = fake.request_count
        hit = await _until_hit(
            lambda: client.responses.with_raw_response.create(model=model, input="cache me")
        )
        stream = await client.responses.create(model=model, input="cache me", stream=True)
        events = [event async for event in stream]
        async with client.responses.stream(model=model, input="cache me") as helper:
            final = await helper.get_final_response()
        other = await client.responses.with_raw_response.create(
            model=model, input="cache me", instructions="be terse"
        )
        assert fake.request_count == calls + 1
    original = first.parse()
    assert hit.parse().output_text == original.output_text and (hit.parse()).id == original.id
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == original.output_text
    assert final.output_text == original.output_text
    assert other.headers["x-switchboard-cache"] == "miss"


async def test_a_cached_response_is_never_another_callers(
    fake: FakeUpstream, namespace: str
) -> None:
    """A response is its caller's stored object: the cache keeps them per caller."""
    keys = {
        "api_keys": "[{alias: a, key: sk-resp-a-0123456789}, {alias: b, key: sk-resp-b-0123456789}]"
    }
    config = make_config(
        fake.base_url + "/v1", namespace, general=textwrap.dedent(GUARDRAILS), settings=keys
    )
    async with (
        service(config) as ([door], _),
        _clients(door.url, "sk-resp-a-0123456789") as (_, a),
        _clients(door.url, "sk-resp-b-0123456789") as (_, b),
    ):
        await a.responses.create(model="gpt-test", input="mine")
        await _until_hit(
            lambda: a.responses.with_raw_response.create(model="gpt-test", input="mine")
        )
        theirs = await b.responses.with_raw_response.create(model="gpt-test", input="mine")
    assert theirs.headers["x-switchboard-cache"] == "miss"


# ------------------------------------------------------------------------------ /v1/completions


async def test_completions_blocks_masks_and_caches_in_the_text_completion_shape(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), _clients(door.url) as (_, client):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.completions.create(model="gpt-test", prompt="the launch codes are")
        assert fake.request_count == 0
        first = await client.completions.with_raw_response.create(model="gpt-test", prompt=EMAIL)
        assert first.headers["x-switchboard-cache"] == "miss"
        sent = fake.requests[-1].body.decode()
        calls = fake.request_count
        hit = await _until_hit(
            lambda: client.completions.with_raw_response.create(model="gpt-test", prompt=EMAIL)
        )
        stream = await client.completions.create(
            model="gpt-test", prompt=EMAIL, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        assert fake.request_count == calls
        masked = await client.completions.create(
            model="gpt-test", prompt="hi", extra_body={"guardrails": ["mask-answers"]}
        )
    assert caught.value.response.json()["error"]["param"] == "no-launch-codes"
    assert "ann@example.com" not in sent and "[EMAIL]" in sent
    original = first.parse()
    assert hit.parse().choices[0].text == original.choices[0].text
    assert "".join(c.choices[0].text for c in chunks if c.choices) == original.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert "[REDACTED]" in masked.choices[0].text


async def test_a_blocked_request_is_refused_before_the_body_is_read_by_any_worker(
    fake: FakeUpstream, namespace: str
) -> None:
    """The raw HTTP of a block on /v1/messages: status 400, Anthropic's error object."""
    async with service(_config(fake, namespace)) as ([door], _), httpx.AsyncClient() as http:
        reply = await http.post(
            door.url + "/v1/messages",
            json={
                "model": "claude",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "launch codes please"}],
            },
        )
    assert reply.status_code == 400
    assert reply.json()["type"] == "error"
    assert reply.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", ["gpt-test", "gpt-native"])
async def test_a_responses_stream_is_masked_in_every_event_that_carries_its_text(
    fake: FakeUpstream, namespace: str, model: str
) -> None:
    masked = {"guardrails": ["mask-answers"]}
    async with service(_config(fake, namespace)) as ([door], _), _clients(door.url) as (_, client):
        stream = await client.responses.create(
            model=model, input="hi", stream=True, extra_body=masked
        )
        events = [event async for event in stream]
        with pytest.raises(openai.APIError) as refused:
            stream = await client.responses.create(
                model=model, input="hi", stream=True, extra_body={"guardrails": ["no-fake-answers"]}
            )
            _ = [event async for event in stream]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    completed = next(e for e in events if e.type == "response.completed")
    done = [e.text for e in events if e.type == "response.output_text.done"]
    assert "[REDACTED]" in deltas and "fake" not in deltas
    assert completed.response.output_text == deltas and done == [deltas]
    assert "no-fake-answers" in str(refused.value)


async def test_a_during_call_block_answers_in_each_apis_shape(
    fake: FakeUpstream, namespace: str
) -> None:
    named = {"guardrails": ["beside-the-call"]}
    async with (
        service(_config(fake, namespace)) as ([door], _),
        _clients(door.url) as (claude, client),
    ):
        with pytest.raises(anthropic.BadRequestError) as on_messages:
            await claude.messages.create(
                model="claude",
                max_tokens=16,
                messages=[{"role": "user", "content": "something forbidden"}],
                extra_body=named,
            )
        with pytest.raises(openai.BadRequestError) as on_responses:
            await client.responses.create(
                model="gpt-test", input="something forbidden", extra_body=named
            )
        with pytest.raises(openai.BadRequestError) as on_completions:
            await client.completions.create(
                model="gpt-test", prompt="something forbidden", extra_body=named
            )
    anthropic_error = on_messages.value.response.json()
    assert anthropic_error["type"] == "error" and "beside-the-call" in str(anthropic_error)
    for caught in (on_responses, on_completions):
        assert caught.value.response.json()["error"]["param"] == "beside-the-call"
