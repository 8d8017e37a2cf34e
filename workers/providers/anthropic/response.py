"""Anthropic's `message` -> an OpenAI `chat.completion`, and the pieces streams share:
content blocks, usage normalisation and the stop_reason -> finish_reason table."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

from workers.errors import ProviderError
from workers.http import describe_body
from workers.wire import (
    ChatCompletion,
    Choice,
    FunctionCall,
    ToolCall,
    Usage,
    assistant_message,
    make_usage,
)

PROVIDER = "anthropic"
# stop_reason -> finish_reason. A stop_reason this table does not know yet is read as `stop`
# (the answer ended normally as far as we can tell), never as an error.
FINISH_REASONS: Mapping[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # A long server-tool turn paused; the caller resends to continue, as after a normal stop.
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class ContentBlock(msgspec.Struct, kw_only=True):
    """Any content block; `type` says which fields are set (text, thinking, tool_use...)."""

    type: str
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None  # redacted_thinking
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None


class OutputTokensDetails(msgspec.Struct):
    thinking_tokens: int = 0


class AnthropicUsage(msgspec.Struct, kw_only=True):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: OutputTokensDetails | None = None

    def updated(self, later: AnthropicUsage | None) -> AnthropicUsage:
        """These counts overwritten by the ones `later` reports (message_delta is cumulative)."""
        if later is None:
            return self
        changes = {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(later, name)) is not None
        }
        return msgspec.structs.replace(self, **changes)


class AnthropicMessage(msgspec.Struct, kw_only=True):
    id: str
    model: str = ""
    content: list[ContentBlock] = []
    stop_reason: str | None = None
    usage: AnthropicUsage = msgspec.field(default_factory=AnthropicUsage)


_decode_message = msgspec.json.Decoder(AnthropicMessage).decode


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "end_turn", "stop")


def usage_of(usage: AnthropicUsage) -> Usage:
    """Hub usage: Anthropic's input_tokens exclude cache reads and writes; add them back."""
    read = usage.cache_read_input_tokens or 0
    written = usage.cache_creation_input_tokens or 0
    details = usage.output_tokens_details
    return make_usage(
        (usage.input_tokens or 0) + read + written,
        usage.output_tokens or 0,
        cached_tokens=read,
        reasoning_tokens=details.thinking_tokens if details else 0,
        cache_write_tokens=written,
    )


def thinking_block(block: ContentBlock) -> dict[str, Any] | None:
    """A thinking block as the caller must send it back (signature included), or None."""
    if block.type == "thinking":
        return {"type": "thinking", "thinking": block.thinking or "", "signature": block.signature}
    if block.type == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    return None


def arguments_of(block: ContentBlock) -> str:
    return orjson.dumps(block.input or {}).decode()


def parse_completion(raw: bytes, *, model: str) -> ChatCompletion:
    try:
        message = _decode_message(raw)
    except msgspec.DecodeError as exc:
        raise ProviderError(
            f"{PROVIDER} sent a response that is not a message: {exc}; body: {describe_body(raw)}",
            provider=PROVIDER,
            model=model,
        ) from exc
    return to_completion(message, model=model)


def to_completion(message: AnthropicMessage, *, model: str) -> ChatCompletion:
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[ToolCall] = []
    for block in message.content:
        if block.type == "text":
            texts.append(block.text or "")
        elif block.type == "tool_use":
            function = FunctionCall(name=block.name or "", arguments=arguments_of(block))
            tool_calls.append(ToolCall(id=block.id or "", function=function))
        elif (thinking := thinking_block(block)) is not None:
            thinking_blocks.append(thinking)
            if block.thinking:
                reasoning.append(block.thinking)
        # Server-tool blocks (web search results...) have no OpenAI form and are left out.
    reply = assistant_message(
        "".join(texts) if texts else None,
        tool_calls=tool_calls or None,
        reasoning_content="".join(reasoning) if reasoning else None,
        thinking_blocks=thinking_blocks or None,
    )
    return ChatCompletion(
        id=message.id,
        created=int(time.time()),
        model=message.model or model,
        choices=[Choice(message=reply, finish_reason=finish_reason(message.stop_reason))],
        usage=usage_of(message.usage),
    )
