"""Chat wire model -> Anthropic Messages replies: a whole `message`, or the SSE events of a
streamed one (`message_start`, `content_block_start|delta|stop`, `message_delta`,
`message_stop`), each already framed as `event: <type>\\ndata: <json>` so the front door
relays it without decoding (broker/sse_frames.py)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import orjson

from workers.ingress.messages_request import STOP_REASONS
from workers.wire import ChatCompletion, ChatCompletionChunk, ToolCallDelta, Usage

JSONObject = dict[str, Any]


class AnthropicErrorDetail(msgspec.Struct):
    type: str
    message: str


class AnthropicError(msgspec.Struct):
    """Anthropic's error body, which /v1/messages answers with (broker/errors.py)."""

    type: Literal["error"]
    error: AnthropicErrorDetail


def event(kind: str, data: JSONObject) -> bytes:
    """One pre-framed SSE event (its `id:` line is the front door's)."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data)


def message_id(chat_id: str) -> str:
    return chat_id if chat_id.startswith("msg_") else "msg_" + chat_id.removeprefix("chatcmpl-")


def usage_of(usage: Usage | None) -> JSONObject:
    """Anthropic counts cache reads and writes apart from input_tokens; the hub's prompt
    count includes them (workers.wire.make_usage)."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    cached, written = usage.cached_tokens, usage.cache_write_tokens
    return {
        "input_tokens": max(0, usage.prompt_tokens - cached - written),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def _tool_input(arguments: str) -> Any:
    try:
        return orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {}  # a model's malformed arguments; Anthropic's input is always an object


def message_body(response: ChatCompletion, model: str) -> bytes:
    """A whole Anthropic `message` for a chat completion."""
    choice = response.choices[0] if response.choices else None
    content: list[JSONObject] = []
    finish = None
    if choice is not None:
        message, finish = choice.message, choice.finish_reason
        if message.thinking_blocks:
            content += [dict(block) for block in message.thinking_blocks]
        elif message.reasoning_content:
            content.append({"type": "thinking", "thinking": message.reasoning_content})
        if message.content:
            content.append({"type": "text", "text": message.content})
        for call in message.tool_calls or ():
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id,
                    "name": call.function.name,
                    "input": _tool_input(call.function.arguments),
                }
            )
    body = {
        "id": message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(finish or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_of(response.usage),
    }
    return orjson.dumps(body)


class MessagesStream:
    """Chat chunks in, Anthropic events out. One content block is open at a time: thinking,
    then text, then each tool call, in the order the deltas arrive."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.native = False  # the events are an Anthropic deployment's own
        self.started = False
        self.index = -1  # of the open block, -1 before the first
        self.open: str | None = None  # the open block's type
        self.tool_index: int | None = None  # the chat tool-call index of the open tool block
        self.stop_reason = "end_turn"

    def frame(self, batch: list[ChatCompletionChunk]) -> tuple[list[bytes], Usage | None]:
        out: list[bytes] = []
        usage = None
        for chunk in batch:
            if not self.started:
                out += self._start(chunk)
            if chunk.usage is not None and not chunk.choices:
                usage = chunk.usage
                continue
            for choice in chunk.choices[:1]:  # Anthropic has one answer
                out += self._delta(choice.delta)
                if choice.finish_reason:
                    self.stop_reason = STOP_REASONS.get(choice.finish_reason, "end_turn")
        return out, usage

    def finish(self, usage: Usage | None) -> list[bytes]:
        out = [] if self.started else self._start(None)
        out += self._close()
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        out.append(
            event(
                "message_delta", {"type": "message_delta", "delta": delta, "usage": usage_of(usage)}
            )
        )
        out.append(event("message_stop", {"type": "message_stop"}))
        return out

    def _start(self, chunk: ChatCompletionChunk | None) -> list[bytes]:
        self.started = True
        message: JSONObject = {
            "id": message_id(chunk.id if chunk is not None else "gateway"),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The provider reports usage at the end: message_delta carries the real counts.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            event("message_start", {"type": "message_start", "message": message}),
            event("ping", {"type": "ping"}),
        ]

    def _open(self, kind: str, block: JSONObject) -> list[bytes]:
        out = self._close()
        self.index += 1
        self.open = kind
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return [*out, event("content_block_start", start)]

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        self.tool_index = None
        return [event("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def _block_delta(self, delta: JSONObject) -> bytes:
        data = {"type": "content_block_delta", "index": self.index, "delta": delta}
        return event("content_block_delta", data)

    def _delta(self, delta: Any) -> list[bytes]:
        out: list[bytes] = []
        if delta.reasoning_content:
            if self.open != "thinking":
                out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out.append(
                self._block_delta({"type": "thinking_delta", "thinking": delta.reasoning_content})
            )
        for block in delta.thinking_blocks or ():
            out += self._thinking_block(block)
        if delta.content:
            if self.open != "text":
                out += self._open("text", {"type": "text", "text": ""})
            out.append(self._block_delta({"type": "text_delta", "text": delta.content}))
        for call in delta.tool_calls or ():
            out += self._tool_delta(call)
        return out

    def _thinking_block(self, block: JSONObject) -> list[bytes]:
        """A finished thinking block (its signature) or a redacted one."""
        if block.get("type") == "redacted_thinking":
            return [*self._open("redacted_thinking", dict(block)), *self._close()]
        out: list[bytes] = []
        if self.open != "thinking":
            out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            if block.get("thinking"):
                out.append(
                    self._block_delta({"type": "thinking_delta", "thinking": block["thinking"]})
                )
        if block.get("signature"):
            out.append(
                self._block_delta({"type": "signature_delta", "signature": block["signature"]})
            )
        return [*out, *self._close()]

    def _tool_delta(self, call: ToolCallDelta) -> list[bytes]:
        out: list[bytes] = []
        function = call.function
        if self.open != "tool_use" or self.tool_index != call.index:
            block = {
                "type": "tool_use",
                "id": call.id or f"toolu_{call.index}",
                "name": (function.name if function else None) or "",
                "input": {},
            }
            out += self._open("tool_use", block)
            self.tool_index = call.index
        if function is not None and function.arguments:
            partial = {"type": "input_json_delta", "partial_json": function.arguments}
            out.append(self._block_delta(partial))
        return out
