"""ConverseStream events -> OpenAI chunks, one batch per network read.

    messageStart                      -> {role: assistant, content: ""}
    contentBlockStart toolUse         -> first tool-call delta: index, id, type, name, ""
    contentBlockDelta text            -> content
    contentBlockDelta toolUse.input   -> arguments fragment of that tool call
    contentBlockDelta reasoningContent-> reasoning_content (the signature is kept)
    contentBlockStop of reasoning     -> thinking_blocks [the whole block, with signature]
    messageStop                       -> finish_reason
    metadata                          -> the usage chunk (`choices: []`), last

Tool-call `index` is the call's position among tool calls, not Bedrock's contentBlockIndex
(a text block usually comes first). Exception frames raise the mapped error mid-stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from workers.errors import ProviderError
from workers.providers.bedrock import converse
from workers.providers.bedrock.errors import PROVIDER, bedrock_error, stream_exception
from workers.providers.bedrock.eventstream import EventStreamDecoder, Frame, FrameError
from workers.providers.bedrock.response import (
    finish_reason,
    redacted_block,
    thinking_block,
    usage_from,
)
from workers.wire import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
    Usage,
    new_chunk,
)


class _Reasoning:
    __slots__ = ("text", "signature", "redacted")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.signature: str | None = None
        self.redacted: str | None = None

    def block(self) -> dict[str, Any]:
        if self.redacted is not None:
            return redacted_block(self.redacted)
        return thinking_block("".join(self.text), self.signature)


class StreamTranslator:
    """Decodes the body's bytes and turns each event into at most one chunk."""

    def __init__(self, response_id: str, model: str, created: int) -> None:
        self.response_id = response_id
        self.model = model
        self.created = created
        self.decoder = EventStreamDecoder()
        self.tool_positions: dict[int, int] = {}  # contentBlockIndex -> tool-call index
        self.reasoning: dict[int, _Reasoning] = {}
        self.finish_reason: str | None = None
        self._events: dict[str, Callable[[bytes], ChatCompletionChunk | None]] = {
            "messageStart": self._message_start,
            "contentBlockStart": self._block_start,
            "contentBlockDelta": self._block_delta,
            "contentBlockStop": self._block_stop,
            "messageStop": self._message_stop,
            "metadata": self._metadata,
        }

    def feed(self, data: bytes) -> list[ChatCompletionChunk]:
        try:
            frames = self.decoder.feed(data)
        except FrameError as exc:
            raise self._error(f"Bedrock sent a corrupt event stream: {exc}") from exc
        batch = []
        for frame in frames:
            chunk = self._frame(frame)
            if chunk is not None:
                batch.append(chunk)
        return batch

    def finish(self) -> None:
        """The body ended: fine after messageStop, a failure before it."""
        if self.finish_reason is None or self.decoder.pending_bytes:
            raise self._error("Bedrock ended the stream before it finished")

    # ------------------------------------------------------------------ frames

    def _frame(self, frame: Frame) -> ChatCompletionChunk | None:
        headers = frame.headers
        kind = headers.get(":message-type")
        if kind == "exception":
            raise stream_exception(
                str(headers.get(":exception-type")), frame.payload, model=self.model
            )
        if kind == "error":
            code = str(headers.get(":error-code") or "")
            message = str(headers.get(":error-message") or "the stream failed")
            raise bedrock_error(500, code, message, model=self.model)
        event_type = str(headers.get(":event-type"))
        handler = self._events.get(event_type)
        if handler is None:
            return None  # an event type newer than this adapter; nothing we can translate
        try:
            return handler(frame.payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self._error(f"Bedrock sent an unreadable {event_type}: {exc}") from exc

    def _message_start(self, payload: bytes) -> ChatCompletionChunk:
        return self._chunk(Delta(role="assistant", content=""))

    def _block_start(self, payload: bytes) -> ChatCompletionChunk | None:
        event = converse.decode_block_start(payload)
        tool_use = event.start.tool_use
        if tool_use is None:
            return None
        position = len(self.tool_positions)
        self.tool_positions[event.content_block_index] = position
        call = ToolCallDelta(
            index=position,
            id=tool_use.tool_use_id,
            type="function",
            function=FunctionCallDelta(name=tool_use.name, arguments=""),
        )
        return self._chunk(Delta(tool_calls=[call]))

    def _block_delta(self, payload: bytes) -> ChatCompletionChunk | None:
        event = converse.decode_block_delta(payload)
        delta = event.delta
        if delta.text is not None:
            return self._chunk(Delta(content=delta.text)) if delta.text else None
        if delta.tool_use is not None:
            return self._arguments(event.content_block_index, delta.tool_use.input)
        if delta.reasoning_content is not None:
            return self._reasoning(event.content_block_index, delta.reasoning_content)
        return None  # citations and other deltas carry nothing OpenAI has a field for

    def _arguments(self, block_index: int, fragment: str) -> ChatCompletionChunk | None:
        position = self.tool_positions.get(block_index)
        if position is None:
            raise self._error("Bedrock sent tool input for a block it never started")
        if not fragment:
            return None
        call = ToolCallDelta(index=position, function=FunctionCallDelta(arguments=fragment))
        return self._chunk(Delta(tool_calls=[call]))

    def _reasoning(
        self, block_index: int, delta: converse.ReasoningDelta
    ) -> ChatCompletionChunk | None:
        reasoning = self.reasoning.setdefault(block_index, _Reasoning())
        if delta.signature is not None:
            reasoning.signature = delta.signature
        if delta.redacted_content is not None:
            reasoning.redacted = delta.redacted_content
        if not delta.text:
            return None
        reasoning.text.append(delta.text)
        return self._chunk(Delta(reasoning_content=delta.text))

    def _block_stop(self, payload: bytes) -> ChatCompletionChunk | None:
        event = converse.decode_block_stop(payload)
        reasoning = self.reasoning.pop(event.content_block_index, None)
        if reasoning is None:
            return None
        # The signature arrives last; the whole block is what must go back next turn.
        return self._chunk(Delta(thinking_blocks=[reasoning.block()]))

    def _message_stop(self, payload: bytes) -> ChatCompletionChunk:
        event = converse.decode_message_stop(payload)
        self.finish_reason = finish_reason(event.stop_reason, model=self.model)
        return self._chunk(Delta(), finish_reason=self.finish_reason)

    def _metadata(self, payload: bytes) -> ChatCompletionChunk | None:
        # The stream's only usage arrives here, after messageStop.
        event = converse.decode_metadata(payload)
        return self._usage_chunk(usage_from(event.usage)) if event.usage is not None else None

    # ------------------------------------------------------------------ helpers

    def _chunk(self, delta: Delta, finish_reason: str | None = None) -> ChatCompletionChunk:
        choice = ChunkChoice(delta=delta, finish_reason=finish_reason)
        return new_chunk(self.response_id, self.created, self.model, [choice])

    def _usage_chunk(self, usage: Usage) -> ChatCompletionChunk:
        return new_chunk(self.response_id, self.created, self.model, [], usage)

    def _error(self, message: str) -> ProviderError:
        return ProviderError(message, provider=PROVIDER, model=self.model)
