"""Anthropic's SSE events -> OpenAI chunks, one batch per network read.

message_start opens (role chunk; input-side usage), each content block streams between its
content_block_start and content_block_stop, message_delta brings stop_reason and cumulative
usage, message_stop closes (usage chunk last). ping and event types we do not know are
skipped, as the SDK skips them; an `error` event raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from workers.errors import ProviderError
from workers.http import describe_body
from workers.providers.anthropic.errors import error_from_event
from workers.providers.anthropic.response import (
    AnthropicUsage,
    ContentBlock,
    arguments_of,
    finish_reason,
    thinking_block,
    usage_of,
)
from workers.providers.sse_reader import SSEEvent
from workers.wire import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
    new_chunk,
)

PROVIDER = "anthropic"


class _Typed(msgspec.Struct):
    type: str = ""


class _StartedMessage(msgspec.Struct):
    id: str
    model: str = ""
    usage: AnthropicUsage = msgspec.field(default_factory=AnthropicUsage)


class MessageStart(msgspec.Struct):
    message: _StartedMessage


class ContentBlockStart(msgspec.Struct):
    index: int
    content_block: ContentBlock


class BlockDelta(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None


class ContentBlockDelta(msgspec.Struct):
    index: int
    delta: BlockDelta


class ContentBlockStop(msgspec.Struct):
    index: int


class _MessageDeltaBody(msgspec.Struct):
    stop_reason: str | None = None


class MessageDelta(msgspec.Struct):
    delta: _MessageDeltaBody
    usage: AnthropicUsage | None = None


class _ErrorObject(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class ErrorEvent(msgspec.Struct):
    error: _ErrorObject


_decode_type = msgspec.json.Decoder(_Typed).decode
_decode_start = msgspec.json.Decoder(MessageStart).decode
_decode_block_start = msgspec.json.Decoder(ContentBlockStart).decode
_decode_block_delta = msgspec.json.Decoder(ContentBlockDelta).decode
_decode_block_stop = msgspec.json.Decoder(ContentBlockStop).decode
_decode_message_delta = msgspec.json.Decoder(MessageDelta).decode
_decode_error = msgspec.json.Decoder(ErrorEvent).decode


class _Thinking:
    """A thinking block being streamed: its text and signature arrive in pieces."""

    __slots__ = ("parts", "signature")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.signature = ""


class _ToolCall:
    __slots__ = ("index", "has_arguments")

    def __init__(self, index: int) -> None:
        self.index = index  # position among tool calls, not Anthropic's block index
        self.has_arguments = False


class StreamTranslator:
    """Feed SSE event batches, get chunk batches; `done` once message_stop arrived."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self.created = int(time.time())
        self.usage = AnthropicUsage()
        self.finish_reason: str | None = None
        self.done = False
        self._tools: dict[int, _ToolCall] = {}
        self._thinking: dict[int, _Thinking] = {}
        # Keyed by the `event:` name as it arrives, so dispatch needs no decoding.
        self._handlers: dict[bytes, Callable[[bytes], ChatCompletionChunk | None]] = {
            b"message_start": self._message_start,
            b"content_block_start": self._block_start,
            b"content_block_delta": self._block_delta,
            b"content_block_stop": self._block_stop,
            b"message_delta": self._message_delta,
            b"message_stop": self._message_stop,
            b"error": self._error,
        }

    def read(self, events: list[SSEEvent]) -> list[ChatCompletionChunk]:
        batch: list[ChatCompletionChunk] = []
        for event in events:
            name = event.event or self._type_of(event.data)
            handler = self._handlers.get(name)
            if handler is None:
                continue  # ping, or an event type newer than this adapter
            try:
                chunk = handler(event.data)
            except msgspec.DecodeError as exc:
                raise self._unreadable(event.data) from exc
            if chunk is not None:
                batch.append(chunk)
        return batch

    def finish(self) -> list[ChatCompletionChunk]:
        """The body ended without message_stop: fine after a stop_reason, else a failure."""
        if self.finish_reason is None:
            raise ProviderError(
                f"{PROVIDER} ended the stream before it finished",
                provider=PROVIDER,
                model=self.model,
            )
        self.done = True
        return [self._usage_chunk()]

    # ------------------------------------------------------------------ events

    def _message_start(self, data: bytes) -> ChatCompletionChunk:
        message = _decode_start(data).message
        self.id = message.id
        self.model = message.model or self.model
        self.usage = message.usage
        return self._chunk(Delta(role="assistant", content=""))

    def _block_start(self, data: bytes) -> ChatCompletionChunk | None:
        start = _decode_block_start(data)
        block = start.content_block
        if block.type == "text":
            return self._chunk(Delta(content=block.text)) if block.text else None
        if block.type == "thinking":
            self._thinking[start.index] = _Thinking()
            return None
        if block.type == "redacted_thinking":
            return self._chunk(Delta(thinking_blocks=[thinking_block(block) or {}]))
        if block.type == "tool_use":
            return self._tool_start(start.index, block)
        return None  # server-tool blocks have no OpenAI form

    def _tool_start(self, index: int, block: ContentBlock) -> ChatCompletionChunk:
        call = self._tools[index] = _ToolCall(len(self._tools))
        call.has_arguments = bool(block.input)
        function = FunctionCallDelta(
            name=block.name or "", arguments=arguments_of(block) if block.input else ""
        )
        delta = ToolCallDelta(index=call.index, id=block.id, type="function", function=function)
        return self._chunk(Delta(tool_calls=[delta]))

    def _block_delta(self, data: bytes) -> ChatCompletionChunk | None:
        event = _decode_block_delta(data)
        delta = event.delta
        if delta.type == "text_delta" and delta.text:
            return self._chunk(Delta(content=delta.text))
        if delta.type == "input_json_delta" and delta.partial_json:
            return self._arguments(event.index, delta.partial_json)
        thinking = self._thinking.get(event.index)
        if thinking is not None and delta.type == "thinking_delta" and delta.thinking:
            thinking.parts.append(delta.thinking)
            return self._chunk(Delta(reasoning_content=delta.thinking))
        if thinking is not None and delta.type == "signature_delta":
            thinking.signature += delta.signature or ""
        return None  # citations_delta and empty fragments

    def _arguments(self, index: int, fragment: str) -> ChatCompletionChunk | None:
        call = self._tools.get(index)
        if call is None:
            return None
        call.has_arguments = True
        function = FunctionCallDelta(arguments=fragment)
        return self._chunk(Delta(tool_calls=[ToolCallDelta(index=call.index, function=function)]))

    def _block_stop(self, data: bytes) -> ChatCompletionChunk | None:
        index = _decode_block_stop(data).index
        thinking = self._thinking.pop(index, None)
        if thinking is not None:
            # The whole signed block goes out once, so it can be sent back on the next turn.
            block = {
                "type": "thinking",
                "thinking": "".join(thinking.parts),
                "signature": thinking.signature,
            }
            return self._chunk(Delta(thinking_blocks=[block]))
        call = self._tools.get(index)
        if call is not None and not call.has_arguments:
            # No input_json_delta (or only "") means an empty input: `{}`, not "".
            function = FunctionCallDelta(arguments="{}")
            delta = ToolCallDelta(index=call.index, function=function)
            return self._chunk(Delta(tool_calls=[delta]))
        return None

    def _message_delta(self, data: bytes) -> ChatCompletionChunk | None:
        event = _decode_message_delta(data)
        # Anthropic reports output tokens on message_delta, cumulatively, not on message_stop.
        self.usage = self.usage.updated(event.usage)
        if event.delta.stop_reason is None or self.finish_reason is not None:
            return None
        self.finish_reason = finish_reason(event.delta.stop_reason)
        return self._chunk(Delta(), finish_reason=self.finish_reason)

    def _message_stop(self, data: bytes) -> ChatCompletionChunk:
        self.done = True
        return self._usage_chunk()

    def _error(self, data: bytes) -> None:
        error = _decode_error(data).error
        raise error_from_event(error.type, error.message, model=self.model)

    # ------------------------------------------------------------------ chunks

    def _chunk(self, delta: Delta, finish_reason: str | None = None) -> ChatCompletionChunk:
        choice = ChunkChoice(delta=delta, finish_reason=finish_reason)
        return new_chunk(self.id, self.created, self.model, [choice])

    def _usage_chunk(self) -> ChatCompletionChunk:
        return new_chunk(self.id, self.created, self.model, [], usage_of(self.usage))

    def _type_of(self, data: bytes) -> bytes:
        """The event type from the data, for an event sent without an `event:` line."""
        try:
            return _decode_type(data).type.encode()
        except msgspec.DecodeError as exc:
            raise self._unreadable(data) from exc

    def _unreadable(self, data: bytes) -> ProviderError:
        return ProviderError(
            f"{PROVIDER} sent a stream event we cannot read: {describe_body(data)}",
            provider=PROVIDER,
            model=self.model,
        )
