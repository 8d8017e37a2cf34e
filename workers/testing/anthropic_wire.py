"""Anthropic Messages bodies and SSE events exactly as the service sends them.

Key order, nesting and value types follow the shared examples (message.json and the three
stream examples): `type` first in every block and event, usage with the cache split and
`service_tier`, `event:` + `data:` framing, a `ping` after the first block opens, input
usage on message_start and cumulative usage on message_delta.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from workers.testing.anthropic_reply import Reply
from workers.testing.reply import ToolCallPlan
from workers.testing.tokens import split_text

encode = msgspec.json.Encoder().encode
# The service writes ping with a space after the colon; the examples keep it.
PING = b'{"type": "ping"}'
MESSAGE_STOP = b'{"type":"message_stop"}'
THINKING_FRAGMENTS = 2

# --------------------------------------------------------------------------- blocks


class _Text(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class _Thinking(msgspec.Struct, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class _ToolUse(msgspec.Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


_Block = _Text | _Thinking | _ToolUse


class _CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int = 0


class _OutputDetails(msgspec.Struct):
    thinking_tokens: int


class _Usage(msgspec.Struct):
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cache_creation: _CacheCreation
    output_tokens: int
    service_tier: str = "standard"
    # In anthropic-python 2.13's Usage type; whether and when the service sends it is not
    # documented, so the fake sends it only when there was thinking.
    output_tokens_details: _OutputDetails | UnsetType = UNSET


class _DeltaUsage(msgspec.Struct):
    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    output_tokens: int
    output_tokens_details: _OutputDetails | UnsetType = UNSET


class _Message(msgspec.Struct, kw_only=True):
    model: str
    id: str
    type: str = "message"
    role: str = "assistant"
    content: list[_Block]
    stop_reason: str | None
    stop_sequence: str | None
    usage: _Usage


# --------------------------------------------------------------------------- events


class _MessageStart(msgspec.Struct, tag="message_start", tag_field="type"):
    message: _Message


class _BlockStart(msgspec.Struct, tag="content_block_start", tag_field="type"):
    index: int
    content_block: _Block


class _TextDelta(msgspec.Struct, tag="text_delta", tag_field="type"):
    text: str


class _InputJsonDelta(msgspec.Struct, tag="input_json_delta", tag_field="type"):
    partial_json: str


class _ThinkingDelta(msgspec.Struct, tag="thinking_delta", tag_field="type"):
    thinking: str


class _SignatureDelta(msgspec.Struct, tag="signature_delta", tag_field="type"):
    signature: str


class _BlockDelta(msgspec.Struct, tag="content_block_delta", tag_field="type"):
    index: int
    delta: _TextDelta | _InputJsonDelta | _ThinkingDelta | _SignatureDelta


class _BlockStop(msgspec.Struct, tag="content_block_stop", tag_field="type"):
    index: int


class _StopDelta(msgspec.Struct):
    stop_reason: str
    stop_sequence: str | None


class _MessageDelta(msgspec.Struct, tag="message_delta", tag_field="type"):
    delta: _StopDelta
    usage: _DeltaUsage


def sse_event(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


_PING_EVENT = sse_event(b"ping", PING)
_STOP_EVENT = sse_event(b"message_stop", MESSAGE_STOP)

# --------------------------------------------------------------------------- rendering


class Ids(msgspec.Struct, frozen=True):
    """The ids of one answer, made from one number unique per server."""

    number: int

    @property
    def message(self) -> str:
        return f"msg_01{self.number:022d}"

    @property
    def signature(self) -> str:
        return f"EqQBCgIYAhIM{self.number:040d}"

    def tool(self, index: int) -> str:
        return f"toolu_01{self.number:020d}{index:02d}"


def render_message(reply: Reply, *, model: str, ids: Ids) -> bytes:
    """The non-stream `message` body."""
    blocks: list[_Block] = []
    if reply.thinking is not None:
        blocks.append(_Thinking(thinking=reply.thinking, signature=ids.signature))
    if reply.text is not None:
        blocks.append(_Text(text=reply.text))
    blocks.extend(_tool_use(call, ids.tool(i)) for i, call in enumerate(reply.tool_calls))
    message = _Message(
        model=model,
        id=ids.message,
        content=blocks,
        stop_reason=reply.stop_reason,
        stop_sequence=reply.stop_sequence,
        usage=_usage(reply, reply.output_tokens, details=True),
    )
    return encode(message)


def render_stream(reply: Reply, *, model: str, ids: Ids) -> list[tuple[bytes, bool]]:
    """Every SSE event of the stream, each with whether it is a content chunk (the unit of
    `stream_error_after` and `disconnect_after`)."""
    start = _Message(
        model=model,
        id=ids.message,
        content=[],
        stop_reason=None,
        stop_sequence=None,
        usage=_usage(reply, 1, details=False),
    )
    events = [(_event(_MessageStart(message=start)), False)]
    for index, block_events in enumerate(_block_events(reply, ids)):
        if index == 0:
            block_events.insert(1, (_PING_EVENT, False))
        events.extend(block_events)
    stop = _StopDelta(stop_reason=reply.stop_reason, stop_sequence=reply.stop_sequence)
    events.append((_event(_MessageDelta(delta=stop, usage=_delta_usage(reply))), False))
    events.append((_STOP_EVENT, False))
    return events


def _block_events(reply: Reply, ids: Ids) -> list[list[tuple[bytes, bool]]]:
    blocks = []
    index = 0
    if reply.thinking is not None:
        blocks.append(_thinking_events(index, reply.thinking, ids.signature))
        index += 1
    if reply.text is not None:
        deltas = [_TextDelta(text=piece) for piece in reply.pieces]
        blocks.append(_content_block(index, _Text(text=""), deltas))
        index += 1
    for i, call in enumerate(reply.tool_calls):
        blocks.append(_tool_events(index, call, ids.tool(i)))
        index += 1
    return blocks


def _thinking_events(index: int, thinking: str, signature: str) -> list[tuple[bytes, bool]]:
    start = _BlockStart(index=index, content_block=_Thinking(thinking="", signature=""))
    events = [(_event(start), False)]
    for piece in split_text(thinking, THINKING_FRAGMENTS):
        events.append((_event(_BlockDelta(index=index, delta=_ThinkingDelta(piece))), True))
    events.append((_event(_BlockDelta(index=index, delta=_SignatureDelta(signature))), False))
    events.append((_event(_BlockStop(index=index)), False))
    return events


def _tool_events(index: int, call: ToolCallPlan, tool_id: str) -> list[tuple[bytes, bool]]:
    start = _BlockStart(index=index, content_block=_ToolUse(id=tool_id, name=call.name, input={}))
    # The service's first input_json_delta is usually empty; it carries no content.
    events = [(_event(start), False), (_event(_BlockDelta(index, _InputJsonDelta(""))), False)]
    for fragment in call.fragments:
        events.append((_event(_BlockDelta(index, _InputJsonDelta(fragment))), True))
    events.append((_event(_BlockStop(index=index)), False))
    return events


def _content_block(index: int, block: _Block, deltas: list[_TextDelta]) -> list[tuple[bytes, bool]]:
    events = [(_event(_BlockStart(index=index, content_block=block)), False)]
    events.extend((_event(_BlockDelta(index=index, delta=delta)), True) for delta in deltas)
    events.append((_event(_BlockStop(index=index)), False))
    return events


def _tool_use(call: ToolCallPlan, tool_id: str) -> _ToolUse:
    arguments: dict[str, Any] = msgspec.json.decode(call.arguments)
    return _ToolUse(id=tool_id, name=call.name, input=arguments)


def _usage(reply: Reply, output_tokens: int, *, details: bool) -> _Usage:
    return _Usage(
        input_tokens=reply.input_tokens,
        cache_creation_input_tokens=reply.cache_creation_input_tokens,
        cache_read_input_tokens=reply.cache_read_input_tokens,
        cache_creation=_CacheCreation(ephemeral_5m_input_tokens=reply.cache_creation_input_tokens),
        output_tokens=output_tokens,
        output_tokens_details=_details(reply) if details else UNSET,
    )


def _delta_usage(reply: Reply) -> _DeltaUsage:
    return _DeltaUsage(
        input_tokens=reply.input_tokens,
        cache_creation_input_tokens=reply.cache_creation_input_tokens,
        cache_read_input_tokens=reply.cache_read_input_tokens,
        output_tokens=reply.output_tokens,
        output_tokens_details=_details(reply),
    )


def _details(reply: Reply) -> _OutputDetails | UnsetType:
    return _OutputDetails(reply.thinking_tokens) if reply.thinking_tokens else UNSET


def _event(payload: msgspec.Struct) -> bytes:
    # Every event Struct is tagged with its event name, so `event:` repeats `type`.
    return sse_event(str(payload.__struct_config__.tag).encode(), encode(payload))
