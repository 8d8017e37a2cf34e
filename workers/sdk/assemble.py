"""Rebuild a whole ChatCompletion from stream chunks (LiteLLM's `stream_chunk_builder`).

Used by SDK callers who stream but want the final object, and by the worker to account for a
stream (finish reason, tool calls) the same way as for a plain response.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workers.errors import InvalidRequest
from workers.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    FunctionCall,
    ToolCall,
    Usage,
    assistant_message,
)


class _ToolCallParts:
    __slots__ = ("id", "type", "name", "arguments")

    def __init__(self) -> None:
        self.id = ""
        self.type = "function"
        self.name = ""
        self.arguments: list[str] = []


class _ChoiceParts:
    __slots__ = ("content", "reasoning", "refusal", "tool_calls", "finish_reason", "thinking")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, _ToolCallParts] = {}
        self.thinking: list[dict[str, Any]] = []
        self.finish_reason: str | None = None

    def add(self, chunk_choice: Any) -> None:
        delta = chunk_choice.delta
        if delta.content:
            self.content.append(delta.content)
        if delta.reasoning_content:
            self.reasoning.append(delta.reasoning_content)
        if delta.refusal:
            self.refusal.append(delta.refusal)
        if delta.thinking_blocks:
            self.thinking.extend(delta.thinking_blocks)
        for fragment in delta.tool_calls or ():
            parts = self.tool_calls.setdefault(fragment.index, _ToolCallParts())
            if fragment.id:
                parts.id = fragment.id
            if fragment.type:
                parts.type = fragment.type
            if fragment.function is not None:
                if fragment.function.name:
                    parts.name += fragment.function.name
                if fragment.function.arguments:
                    parts.arguments.append(fragment.function.arguments)
        if chunk_choice.finish_reason:
            self.finish_reason = chunk_choice.finish_reason

    def build(self, index: int) -> Choice:
        tool_calls = [
            ToolCall(
                id=parts.id,
                type=parts.type,
                function=FunctionCall(name=parts.name, arguments="".join(parts.arguments)),
            )
            for _, parts in sorted(self.tool_calls.items())
        ]
        message = assistant_message(
            "".join(self.content) if self.content else None,
            refusal="".join(self.refusal) if self.refusal else None,
            tool_calls=tool_calls or None,
            reasoning_content="".join(self.reasoning) if self.reasoning else None,
            thinking_blocks=self.thinking or None,
        )
        return Choice(index=index, message=message, finish_reason=self.finish_reason)


def stream_chunk_builder(chunks: Iterable[ChatCompletionChunk]) -> ChatCompletion:
    """The ChatCompletion the chunks add up to: text, tool calls (arguments joined per
    index), reasoning, finish reasons and the usage of the usage chunk."""
    first: ChatCompletionChunk | None = None
    usage: Usage | None = None
    choices: dict[int, _ChoiceParts] = {}
    fingerprint = None
    for chunk in chunks:
        if first is None or (not first.id and chunk.id):
            first = chunk
        fingerprint = chunk.system_fingerprint or fingerprint
        if chunk.usage is not None:
            usage = chunk.usage
        for chunk_choice in chunk.choices:
            choices.setdefault(chunk_choice.index, _ChoiceParts()).add(chunk_choice)
    if first is None:
        raise InvalidRequest("cannot build a completion from an empty stream", param="chunks")
    return ChatCompletion(
        id=first.id,
        created=first.created,
        model=first.model,
        choices=[parts.build(index) for index, parts in sorted(choices.items())],
        usage=usage,
        system_fingerprint=fingerprint,
        service_tier=first.service_tier,
    )
