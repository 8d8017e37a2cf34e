"""The legacy text completions API (`POST /v1/completions`, issue #16): its wire types, and
the translation to a chat request and back that lets every provider serve it.

The front door turns a completion request into a chat request (the prompt as one user
message) and queues it as a chat request of kind KIND_TEXT_COMPLETION; the worker serves it
like any chat request and writes its answer back in the text completion shape. A provider
with a native completions API (`text-completion-openai/`) turns that one user message back
into its prompt, unchanged. What has no chat equivalent (`echo`, `logprobs`, `suffix`,
`best_of` > 1, several prompts, token-id prompts) is refused with a 400 naming the field.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from workers.errors import InvalidRequest
from workers.wire import ChatCompletion, ChatCompletionChunk, Usage, WireModel

# The fields with no chat equivalent -> why they are refused.
_REFUSED = {
    "echo": "echoing the prompt back",
    "logprobs": "token log probabilities in the completions shape",
    "suffix": "text after the insertion point (fill-in-the-middle)",
}


class CompletionRequest(msgspec.Struct, kw_only=True):
    """The fields the front door checks; the rest go on as sent (as chat parameters)."""

    model: str
    # A string, or a list of strings, token ids or token-id lists (checked by single_prompt).
    prompt: str | list[Any]
    max_tokens: int | None = None
    n: int | None = None
    best_of: int | None = None
    stream: bool | None = None
    echo: bool | None = None
    logprobs: int | None = None
    suffix: str | None = None


decode_completion_request = msgspec.json.Decoder(CompletionRequest).decode


class TextChoice(WireModel, kw_only=True):
    text: str
    index: int = 0
    # Always null: log probabilities in this shape are refused (see _REFUSED).
    logprobs: None = None
    finish_reason: str | None = None


class TextCompletion(WireModel, kw_only=True):
    """`text_completion`, the whole answer and each streamed chunk alike."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


_encode = msgspec.json.Encoder().encode
decode_text_completion = msgspec.json.Decoder(TextCompletion).decode


def chat_body(body: dict[str, Any], request: CompletionRequest) -> dict[str, Any]:
    """The chat request a completion request becomes (a new dict)."""
    for field, what in _REFUSED.items():
        if body.get(field) not in (None, False):
            raise _refused(field, what)
    if request.best_of not in (None, 1):
        raise _refused("best_of", "generating several candidates and keeping the best")
    chat = {k: v for k, v in body.items() if k not in ("prompt", "best_of", *_REFUSED)}
    chat["messages"] = [{"role": "user", "content": single_prompt(request.prompt)}]
    return chat


def single_prompt(prompt: str | list[Any]) -> str:
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1 and isinstance(prompt[0], str):
        return prompt[0]
    if prompt and all(isinstance(p, str) for p in prompt):
        raise InvalidRequest(
            "`prompt` holds several prompts; Switchboard serves one prompt per request "
            "(send one request per prompt)",
            param="prompt",
            code="unsupported_value",
        )
    raise InvalidRequest(
        "`prompt` must be text: token-id prompts are not supported by Switchboard",
        param="prompt",
        code="unsupported_value",
    )


def prompt_of(messages: list[dict[str, Any]]) -> str:
    """The prompt a native completions API gets for chat messages: a completion request's
    own prompt (its one user message) unchanged, else every message's text in order."""
    texts = [_text(m.get("content")) for m in messages]
    return texts[0] if len(texts) == 1 else "\n\n".join(t for t in texts if t)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def from_chat(response: ChatCompletion) -> bytes:
    """A chat answer in the text completion shape (JSON bytes)."""
    choices = [
        TextChoice(
            text=choice.message.content or "",
            index=choice.index,
            finish_reason=choice.finish_reason,
        )
        for choice in response.choices
    ]
    return _encode(
        TextCompletion(
            id=response.id,
            created=response.created,
            model=response.model,
            choices=choices,
            usage=response.usage,
            system_fingerprint=response.system_fingerprint,
        )
    )


def from_chunk(chunk: ChatCompletionChunk) -> bytes:
    """A chat stream chunk in the text completion shape (JSON bytes)."""
    choices = [
        TextChoice(
            text=choice.delta.content or "", index=choice.index, finish_reason=choice.finish_reason
        )
        for choice in chunk.choices
    ]
    return _encode(
        TextCompletion(
            id=chunk.id,
            created=chunk.created,
            model=chunk.model,
            choices=choices,
            usage=chunk.usage,
            system_fingerprint=chunk.system_fingerprint,
        )
    )


def _refused(field: str, what: str) -> InvalidRequest:
    return InvalidRequest(
        f"`{field}` ({what}) is not supported by Switchboard's /v1/completions; remove it",
        param=field,
        code="unsupported_parameter",
    )
