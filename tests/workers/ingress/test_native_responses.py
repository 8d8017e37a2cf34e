"""Reading a native Responses reply on the side (workers/providers/openai_responses.py):
which deployments are served natively, and the chunks, usage and failures the worker counts
from OpenAI's events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from workers.deployment import Deployment
from workers.errors import ProviderError, SwitchboardError
from workers.providers.openai_responses import EventReader, parse_response, serves_natively
from workers.providers.sse_reader import SSEEvent

USAGE = {
    "input_tokens": 12,
    "input_tokens_details": {"cached_tokens": 4},
    "output_tokens": 7,
    "output_tokens_details": {"reasoning_tokens": 2},
    "total_tokens": 19,
}


def event(kind: str, **fields: Any) -> SSEEvent:
    return SSEEvent(orjson.dumps({"type": kind, **fields}), kind.encode())


def failed(error: Any) -> SwitchboardError:
    return ProviderError(str(error.get("message")), provider="openai", model="m")


@pytest.mark.parametrize(
    ("provider", "version", "options", "native"),
    [
        ("openai", None, {}, True),
        ("openai", None, {"responses_api": "translate"}, False),
        ("openai", None, {"responses_api": "chat"}, False),
        ("azure", "2024-10-21", {}, False),
        ("azure", "2024-10-21", {"responses_api": "native"}, True),
        ("azure", "2025-03-01-preview", {}, True),
        ("azure", "preview", {}, True),
        ("azure", "2025-04-01-preview", {"responses_api": "translate"}, False),
        ("anthropic", None, {}, False),
        ("groq", None, {"responses_api": "native"}, False),
    ],
)
def test_which_deployments_serve_responses_natively(provider, version, options, native):
    deployment = Deployment(provider=provider, model="m", api_version=version, options=options)
    assert serves_natively(deployment) is native


def test_stream_gives_text_then_the_finish_and_the_usage_last():
    reader = EventReader("openai", "m", failed)
    first = reader.read(
        [
            event("response.created", response={"id": "resp_1"}),
            event("response.output_text.delta", delta="Hel"),
            event("response.output_text.delta", delta="lo"),
        ]
    )
    assert [c.choices[0].delta.content for c in first] == ["Hel", "lo"]
    assert first[0].id == "resp_1"
    done = reader.read(
        [event("response.completed", response={"status": "completed", "usage": USAGE})]
    )
    assert reader.done
    assert done[0].choices[0].finish_reason == "stop"
    usage = done[-1].usage
    assert usage is not None and not done[-1].choices
    assert (usage.prompt_tokens, usage.completion_tokens) == (12, 7)
    assert (usage.cached_tokens, usage.reasoning_tokens) == (4, 2)


def test_an_incomplete_response_finishes_for_length():
    reader = EventReader("openai", "m", failed)
    batch = reader.read([event("response.incomplete", response={"status": "incomplete"})])
    assert batch[0].choices[0].finish_reason == "length"


def test_an_error_event_and_a_cut_stream_are_failures():
    reader = EventReader("openai", "m", failed)
    with pytest.raises(ProviderError, match="overloaded"):
        reader.read([event("error", code="server_error", message="overloaded")])
    with pytest.raises(ProviderError, match="before it finished"):
        EventReader("openai", "m", failed).finish()


def test_a_whole_response_keeps_its_bytes_and_counts_its_usage():
    body = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": "gpt-4o",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "Hi"}]}],
        "usage": USAGE,
    }
    raw = orjson.dumps(body)
    completion = parse_response(raw, provider="openai", model="m")
    assert completion.choices[0].message.content == "Hi"
    assert completion.usage is not None and completion.usage.prompt_tokens == 12
    assert completion.native_body == raw  # type: ignore[attr-defined]
    with pytest.raises(ProviderError):
        parse_response(b'{"object": "chat.completion"}', provider="openai", model="m")
