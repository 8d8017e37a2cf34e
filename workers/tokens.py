"""The one token estimate the gateway makes before a provider counts: about four bytes of
request JSON per token. Routing's limits (tpm, context windows) and the request caps at the
front door and in the SDK use it, so a request is measured the same way everywhere.

It is deliberately cheap (one msgspec encode, no tokenizer) and only roughly right: English
prose runs at about 4.2 characters per token, so the estimate is a little high for it; data
URLs count as their base64 text. Limits compared against it should be generous."""

from __future__ import annotations

from typing import Any

import msgspec

from workers.wire import ChatCompletionRequest, EmbeddingRequest

CHARS_PER_TOKEN = 4
_encode = msgspec.json.Encoder().encode


def estimate_tokens(value: Any) -> int:
    """Tokens in `value` as JSON: its encoded length / 4, plus one."""
    return len(_encode(value)) // CHARS_PER_TOKEN + 1


def estimate_prompt_tokens(request: ChatCompletionRequest | EmbeddingRequest) -> int:
    """A request's prompt: a chat's messages, or an embedding request's input."""
    if isinstance(request, ChatCompletionRequest):
        return estimate_tokens(request.messages)
    return estimate_tokens(request.input)


def estimate_input_tokens(item: str | list[int]) -> int:
    """One embedding input: a text by the estimate, an array of token ids exactly."""
    return len(item) if isinstance(item, list) else estimate_tokens(item)
