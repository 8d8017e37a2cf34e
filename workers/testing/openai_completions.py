"""OpenAI's legacy `POST /v1/completions` as a fake (the `text-completion-openai/` provider,
issue #16): a prompt in, `text_completion` objects out, whole or as SSE with usage last when
`stream_options.include_usage` asks for it. The answer names the prompt it completed."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web

from workers.testing import openai_errors as errors
from workers.testing.responses import json_response
from workers.testing.state import ClientWatch, FakeState
from workers.testing.streaming import SSE_CONTENT_TYPE, send_events, sse_data
from workers.testing.tokens import count_tokens


class _Request(msgspec.Struct):
    model: str
    prompt: str | list[str]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None


_decode = msgspec.json.Decoder(_Request).decode
_encode = msgspec.json.Encoder().encode


def reply_text(prompt: str) -> str:
    return f" and so the story of {prompt.strip()[:40]!r} goes on."


async def answer_completion(
    request: web.Request, state: FakeState, body: bytes
) -> web.StreamResponse:
    try:
        asked = _decode(body)
    except msgspec.DecodeError as exc:
        return errors.invalid_request(f"Invalid request body: {exc}")
    prompt = asked.prompt if isinstance(asked.prompt, str) else "".join(asked.prompt)
    text = reply_text(prompt)
    usage = {
        "prompt_tokens": count_tokens(prompt),
        "completion_tokens": count_tokens(text),
        "total_tokens": count_tokens(prompt) + count_tokens(text),
    }
    head = {"id": f"cmpl-{next(state.ids):029x}", "created": int(time.time())}
    head |= {"object": "text_completion", "model": asked.model}
    if not asked.stream:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}
        return json_response(_encode({**head, "choices": [choice], "usage": usage}))
    events = [
        sse_data(_encode({**head, "choices": [_choice(piece, None)]}))
        for piece in text.split(" ")[1:]
    ]
    events.append(sse_data(_encode({**head, "choices": [_choice("", "stop")]})))
    if (asked.stream_options or {}).get("include_usage"):
        events.append(sse_data(_encode({**head, "choices": [], "usage": usage})))
    events.append(sse_data(b"[DONE]"))
    with ClientWatch(state, request.path, asked.model) as watch:
        return await send_events(request, watch, events, headers={"Content-Type": SSE_CONTENT_TYPE})


def _choice(text: str, finish_reason: str | None) -> dict[str, Any]:
    return {
        "text": f" {text}" if text else "",
        "index": 0,
        "logprobs": None,
        "finish_reason": finish_reason,
    }
