"""Converse answers -> OpenAI: content blocks, stopReason and usage (shared with the stream).

Content: `text` (and the text of `citationsContent`) -> `content`; `toolUse` -> `tool_calls`
with `input` serialised to a JSON string; `reasoningContent` -> `reasoning_content` plus
`thinking_blocks` ({type: thinking, thinking, signature} or {type: redacted_thinking, data}),
which a client sends back unchanged on its next turn (see `messages`).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from workers.errors import ProviderError
from workers.providers.bedrock.converse import ConverseResponse, OutputBlock, TokenUsage
from workers.providers.bedrock.errors import PROVIDER
from workers.wire import (
    ChatCompletion,
    Choice,
    FunctionCall,
    ToolCall,
    Usage,
    assistant_message,
    make_usage,
)

# Converse stopReason -> OpenAI finish_reason.
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# The model produced output that is not what it claimed (unparsable tool input, broken
# structure). We fail the call rather than report `stop`: a caller cannot use a malformed
# tool call, and a retryable 502 lets retries and fallbacks recover. Streams fail mid-stream.
MALFORMED_STOP_REASONS = frozenset({"malformed_model_output", "malformed_tool_use"})


def finish_reason(stop_reason: str, *, model: str) -> str:
    if stop_reason in MALFORMED_STOP_REASONS:
        raise ProviderError(
            f"Bedrock stopped with {stop_reason}: the model's output was malformed",
            code=stop_reason,
            provider=PROVIDER,
            model=model,
        )
    # A stopReason newer than this table ends the turn normally as far as we can tell.
    return FINISH_REASONS.get(stop_reason, "stop")


def usage_from(usage: TokenUsage) -> Usage:
    """inputTokens excludes cache reads and writes on Bedrock; the hub's prompt includes them."""
    read = usage.cache_read_input_tokens
    written = usage.cache_write_input_tokens or 0
    return make_usage(
        usage.input_tokens + read + written,
        usage.output_tokens,
        cached_tokens=read,
        cache_write_tokens=usage.cache_write_input_tokens,
    )


def thinking_block(text: str, signature: str | None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "thinking", "thinking": text}
    if signature is not None:
        block["signature"] = signature
    return block


def redacted_block(data: str) -> dict[str, Any]:
    return {"type": "redacted_thinking", "data": data}


class _Parts:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.thinking: list[dict[str, Any]] = []
        self.tool_calls: list[ToolCall] = []

    def add(self, block: OutputBlock) -> None:
        if block.text is not None:
            self.text.append(block.text)
        elif block.tool_use is not None:
            use = block.tool_use
            arguments = orjson.dumps(use.input if use.input is not None else {}).decode()
            function = FunctionCall(name=use.name, arguments=arguments)
            self.tool_calls.append(ToolCall(id=use.tool_use_id, function=function))
        elif block.reasoning_content is not None:
            self._add_reasoning(block.reasoning_content)
        elif block.citations_content is not None:
            self.text.extend(c.text for c in block.citations_content.content if c.text)

    def _add_reasoning(self, reasoning: Any) -> None:
        if reasoning.reasoning_text is not None:
            text = reasoning.reasoning_text
            self.reasoning.append(text.text)
            self.thinking.append(thinking_block(text.text, text.signature))
        elif reasoning.redacted_content is not None:
            self.thinking.append(redacted_block(reasoning.redacted_content))


def completion_from(response: ConverseResponse, *, response_id: str, model: str) -> ChatCompletion:
    parts = _Parts()
    message = response.output.message
    for block in message.content if message is not None else ():
        parts.add(block)
    answer = assistant_message(
        "".join(parts.text) if parts.text else None,
        tool_calls=parts.tool_calls or None,
        reasoning_content="".join(parts.reasoning) if parts.reasoning else None,
        thinking_blocks=parts.thinking or None,
    )
    return ChatCompletion(
        id=response_id,
        created=int(time.time()),
        model=model,
        choices=[
            Choice(message=answer, finish_reason=finish_reason(response.stop_reason, model=model))
        ],
        usage=usage_from(response.usage) if response.usage is not None else None,
    )
