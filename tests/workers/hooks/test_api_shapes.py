"""Each API's answer both ways: a whole answer replayed as its stream and assembled back is
the same answer (what the response cache relies on), and the texts a stream's events add
are the answer's texts (what a stream's post_call check reads)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from workers.hooks import api_shapes
from workers.hooks.api_shapes import assemble, parse_event, stream_slots
from workers.hooks.cache import cache_digest
from workers.hooks.guardrail_base import response_slots, text_slots
from workers.hooks.replay import replay

MESSAGE: dict[str, Any] = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude",
    "content": [
        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
        {"type": "text", "text": "Sunny in Paris."},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 7},
}
RESPONSE: dict[str, Any] = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "model": "gpt",
    "output": [
        {
            "id": "msg_1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Sunny.", "annotations": []}],
        },
        {
            "id": "fc_1",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_1",
            "name": "weather",
            "arguments": '{"city":"Paris"}',
        },
    ],
    "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
}
TEXT: dict[str, Any] = {
    "id": "cmpl-1",
    "object": "text_completion",
    "created": 1,
    "model": "gpt",
    "choices": [
        {"text": "one", "index": 0, "logprobs": None, "finish_reason": "stop"},
        {"text": "two", "index": 1, "logprobs": None, "finish_reason": "length"},
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
}


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        (api_shapes.MESSAGES, MESSAGE),
        (api_shapes.RESPONSES, RESPONSE),
        (api_shapes.TEXT_COMPLETION, TEXT),
    ],
)
def test_a_replayed_answer_assembles_back_to_itself(kind: str, answer: dict[str, Any]) -> None:
    events = replay(kind, orjson.dumps(answer), include_usage=True)
    assembled = assemble(kind, events)
    assert assembled is not None and orjson.loads(assembled) == answer


@pytest.mark.parametrize(
    ("kind", "answer", "text"),
    [
        (api_shapes.MESSAGES, MESSAGE, {0: "Sunny in Paris."}),
        (api_shapes.RESPONSES, RESPONSE, {0: "Sunny."}),
        (api_shapes.TEXT_COMPLETION, TEXT, {0: "one", 1: "two"}),
    ],
)
def test_a_streams_new_text_is_the_answers_text(
    kind: str, answer: dict[str, Any], text: dict[int, str]
) -> None:
    added: dict[int, str] = {}
    repeated = []
    for event in replay(kind, orjson.dumps(answer), include_usage=False):
        for (_, piece), index in stream_slots(parse_event(event)[1]):
            if index is None:
                repeated.append(piece)
            else:
                added[index] = added.get(index, "") + piece
    assert added == text
    # A Responses stream repeats its text in its *.done events and response.completed:
    # a masking guardrail rewrites those too.
    assert (len(repeated) == 4) if kind == api_shapes.RESPONSES else not repeated


def test_events_that_make_no_answer_assemble_to_nothing() -> None:
    assert assemble(api_shapes.RESPONSES, [b'event: response.created\ndata: {"type":"x"}']) is None
    assert assemble(api_shapes.MESSAGES, [b"event: ping\ndata: {}"]) is None
    assert assemble(api_shapes.CHAT, []) is None


def test_every_input_text_of_each_api_is_found() -> None:
    anthropic_body = {
        "system": [{"type": "text", "text": "s1"}],
        "messages": [
            {"role": "user", "content": "m1"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "m2"},
                    {"type": "tool_result", "tool_use_id": "t", "content": "r1"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": "r2"}],
                    },
                    {"type": "document", "source": {"type": "text", "data": "d1"}},
                    {"type": "image", "source": {"type": "base64", "data": "AAAA"}},
                ],
            },
        ],
    }
    responses_body = {
        "instructions": "i1",
        "input": [
            {"role": "user", "content": "u1"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "u2"}]},
            {"type": "function_call_output", "call_id": "c", "output": "o1"},
        ],
    }
    assert [t for _, t in text_slots(anthropic_body)] == ["s1", "m1", "m2", "r1", "r2", "d1"]
    assert [t for _, t in text_slots(responses_body)] == ["i1", "u1", "u2", "o1"]
    assert [t for _, t in text_slots({"input": ["e1", "e2"]})] == ["e1", "e2"]
    assert [t for _, t in response_slots(MESSAGE)] == ["Sunny in Paris."]
    assert [t for _, t in response_slots(RESPONSE)] == ["Sunny."]
    assert [t for _, t in response_slots(TEXT)] == ["one", "two"]


def test_a_stored_and_an_unstored_response_are_two_cache_entries() -> None:
    body = {"model": "gpt", "input": "hi"}
    stored = cache_digest(body, "gpt", api_shapes.RESPONSES, None)
    assert stored == cache_digest({**body, "store": True}, "gpt", api_shapes.RESPONSES, None)
    assert stored != cache_digest({**body, "store": False}, "gpt", api_shapes.RESPONSES, None)
    # Chat's `store` (OpenAI's stored completions) decides nothing of the answer.
    chat = {"model": "gpt", "messages": []}
    assert cache_digest(chat, "gpt", "chat", None) == cache_digest(
        {**chat, "store": True}, "gpt", "chat", None
    )
