"""Which providers continue a partial answer, and how (issue #15, item 2): each adapter's
`continuation(call, prefix)`, and how the continuation's chunks join the stream the client
already has (workers/runtime/continuation.py)."""

from __future__ import annotations

from typing import Any

import pytest

from workers.deployment import Deployment
from workers.envelopes import Meta, Record
from workers.http import HttpClient
from workers.providers import PROVIDERS, create_adapter, make_deployment
from workers.providers.anthropic import refuses_prefill
from workers.providers.base import ChatCall, Continued
from workers.runtime import continuation
from workers.runtime.continuation import Delivered, Splice
from workers.wire import (
    ChunkChoice,
    Delta,
    Usage,
    chat_request_from_dict,
    encode,
    new_chunk,
)

CONTINUES = {"anthropic", "vertex_ai", "hosted_vllm"}


def call_of(**body: Any) -> ChatCall:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    return ChatCall(request=chat_request_from_dict(body), body=body)


def deployment(provider: str, model: str = "some-model") -> Deployment:
    return make_deployment(f"{provider}/{model}", {}, api_key="sk-test", api_base="http://x")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_only_anthropic_and_vllm_continue_a_partial_answer(provider: str) -> None:
    http = HttpClient()
    try:
        model = "claude-sonnet-4-5" if provider in ("anthropic", "vertex_ai") else "some-model"
        adapter = create_adapter(deployment(provider, model), http)
        continued = adapter.continuation(call_of(), "The answer so far")
    finally:
        await http.close()
    assert isinstance(continued, Continued) == (provider in CONTINUES), continued


async def test_anthropic_prefills_without_trailing_whitespace_and_skips_it_after() -> None:
    http = HttpClient()
    try:
        adapter = create_adapter(deployment("anthropic", "claude-sonnet-4-5"), http)
        continued = adapter.continuation(call_of(max_tokens=100), "Paris is \n")
    finally:
        await http.close()
    assert isinstance(continued, Continued)
    assert continued.skip == " \n"
    assert continued.call.body["messages"][-1] == {"role": "assistant", "content": "Paris is"}
    assert continued.call.request.messages[-1].content == "Paris is"
    # The cap covers both parts: the prefix's tokens come off it.
    assert continued.call.request.max_tokens == continued.call.body["max_tokens"] < 100


@pytest.mark.parametrize(
    ("model", "fields", "why"),
    [
        ("claude-sonnet-4-5", {"reasoning_effort": "low"}, "extended thinking"),
        ("claude-sonnet-4-5", {"thinking": {"type": "enabled", "budget_tokens": 2048}}, "thinking"),
        ("claude-opus-4-6", {}, "Claude 4.6 and later"),
    ],
)
async def test_anthropic_refuses_where_the_service_refuses_a_prefill(
    model: str, fields: dict[str, Any], why: str
) -> None:
    http = HttpClient()
    try:
        adapter = create_adapter(deployment("anthropic", model), http)
        continued = adapter.continuation(call_of(**fields), "Paris")
    finally:
        await http.close()
    assert isinstance(continued, str) and why in continued


@pytest.mark.parametrize(
    ("model", "refused"),
    [
        ("claude-sonnet-4-5-20250929", False),
        ("claude-sonnet-4-20250514", False),
        ("claude-3-7-sonnet-latest", False),
        ("claude-haiku-4-5", False),
        ("claude-opus-4-6", True),
        ("claude-sonnet-4-6-20260101", True),
        ("claude-opus-5", True),
    ],
)
def test_the_models_that_refuse_prefill_are_claude_4_6_and_later(model: str, refused: bool) -> None:
    assert refuses_prefill(model) is refused


async def test_vllm_continues_the_final_message_without_a_generation_prompt() -> None:
    http = HttpClient()
    try:
        adapter = create_adapter(deployment("hosted_vllm"), http)
        continued = adapter.continuation(call_of(), "Paris is ")
    finally:
        await http.close()
    assert isinstance(continued, Continued) and continued.skip == ""
    body = continued.call.body
    assert body["messages"][-1] == {"role": "assistant", "content": "Paris is "}
    assert (body["continue_final_message"], body["add_generation_prompt"]) == (True, False)


def chunk(delta: Delta, finish: str | None = None, usage: Usage | None = None) -> Any:
    choices = [ChunkChoice(delta=delta, finish_reason=finish)] if usage is None else []
    return new_chunk("c-new", 2, "new-model", choices, usage)


def test_delivered_text_is_the_content_deltas_of_the_records_in_order() -> None:
    records = [
        Record(
            seq=1,
            chunks=[
                encode(
                    new_chunk(
                        "c-1", 1, "m", [ChunkChoice(delta=Delta(role="assistant", content=""))]
                    )
                )
            ],
            meta=Meta(deployment="d[0]"),
        ),
        Record(
            seq=2,
            chunks=[
                encode(new_chunk("c-1", 1, "m", [ChunkChoice(delta=Delta(content=t))]))
                for t in ("Pa", "ris")
            ],
        ),
    ]
    delivered = Delivered.read(records)
    assert (delivered.text, delivered.chunk_id, delivered.model) == ("Paris", "c-1", "m")
    assert delivered.meta is not None and delivered.meta.deployment == "d[0]"
    assert not delivered.is_finished
    request = call_of().request
    assert continuation.refusal(request, delivered, enabled=True) is None
    assert continuation.refusal(request, delivered, enabled=False) == continuation.DISABLED
    assert (
        continuation.refusal(call_of(n=2).request, delivered, True) == continuation.SEVERAL_CHOICES
    )


def test_the_splice_makes_the_continuation_the_rest_of_the_same_stream() -> None:
    delivered = Delivered()
    delivered.add(
        new_chunk("c-1", 1, "m", [ChunkChoice(delta=Delta(role="assistant", content="Paris is"))])
    )
    lost = Usage(prompt_tokens=10, completion_tokens=3, total_tokens=13)
    splice = Splice(delivered, " \n", lost)
    usage = Usage(prompt_tokens=12, completion_tokens=5, total_tokens=17)
    out = splice.batch(
        [
            chunk(Delta(role="assistant", content="")),  # a second role announcement: dropped
            chunk(Delta(content=" ")),  # repeats held-back whitespace: dropped
            chunk(Delta(content="\nthe capital")),
            chunk(Delta(), finish="stop"),
            chunk(Delta(), usage=usage),
        ]
    )
    assert [c.choices[0].delta.content for c in out[:-2]] == ["the capital"]
    assert all((c.id, c.created, c.model) == ("c-1", 1, "m") for c in out)
    assert all(ch.delta.role is None for c in out for ch in c.choices)
    assert out[-2].choices[0].finish_reason == "stop"
    assert out[-1].usage == Usage(prompt_tokens=22, completion_tokens=8, total_tokens=30)
