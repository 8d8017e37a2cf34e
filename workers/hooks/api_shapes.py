"""The answer of each front door's API as the hooks see it (issue #19): chat completions,
embeddings, legacy text completions, Anthropic Messages and OpenAI Responses. A stream's
events are read for the text they add (guardrails mask and check it) and assembled into
the whole answer (the response cache stores it); `replay.py` goes the other way.

A Messages or Responses event comes pre-framed from the worker (`event: <type>\\ndata:
<json>`, workers/ingress/); a chat or text completion chunk is bare JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import orjson

from workers.sdk.assemble import stream_chunk_builder
from workers.wire import decode_chunk, encode

CHAT: Final = "chat"
EMBEDDING: Final = "embedding"
TEXT_COMPLETION: Final = "text_completion"
MESSAGES: Final = "messages"
RESPONSES: Final = "responses"
KINDS: Final = (CHAT, EMBEDDING, TEXT_COMPLETION, MESSAGES, RESPONSES)

# What a guardrail reads or rewrites: (container, key) and the text there.
Slot = tuple[tuple[Any, Any], str]
JSONObject = dict[str, Any]

_EVENT: Final = b"event: "
_DATA: Final = b"\ndata: "


# ------------------------------------------------------------------------------ events


def parse_event(raw: bytes) -> tuple[bytes | None, Any]:
    """(the event's type line, or None for bare JSON; its data). Data that is no JSON
    (a stream's `[DONE]`) is None."""
    name = None
    data = raw
    if raw.startswith(_EVENT):
        name, _, data = raw.partition(_DATA)
    try:
        return name, orjson.loads(data)
    except orjson.JSONDecodeError:
        return name, None


def frame_event(name: bytes | None, data: Any) -> bytes:
    payload = orjson.dumps(data)
    return payload if name is None else name + _DATA + payload


# ------------------------------------------------------------------------------ stream texts


def stream_slots(data: Any) -> Iterator[tuple[Slot, int | None]]:
    """The texts one stream event carries, each with its choice index when it adds to the
    answer (a delta), or None when it repeats text already streamed (a Responses `*.done`
    event, `response.completed`): a masking guardrail rewrites both, a check reads only the
    first."""
    if not isinstance(data, dict):
        return
    kind = data.get("type")
    if kind is None:  # chat or text completion
        for choice in data.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = int(choice.get("index") or 0)
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                yield ((delta, "content"), delta["content"]), index
            elif isinstance(choice.get("text"), str):
                yield ((choice, "text"), choice["text"]), index
        return
    if kind == "content_block_delta":  # Anthropic
        delta = data.get("delta")
        if isinstance(delta, dict) and delta.get("type") == "text_delta":
            yield ((delta, "text"), str(delta.get("text") or "")), 0
        return
    yield from _responses_slots(kind, data)


def _responses_slots(kind: str, data: JSONObject) -> Iterator[tuple[Slot, int | None]]:
    if kind == "response.output_text.delta" and isinstance(data.get("delta"), str):
        yield ((data, "delta"), data["delta"]), 0
    elif kind == "response.output_text.done" and isinstance(data.get("text"), str):
        yield ((data, "text"), data["text"]), None
    elif kind == "response.content_part.done" and isinstance(data.get("part"), dict):
        yield from _repeated(_part_slots(data["part"]))
    elif kind == "response.output_item.done" and isinstance(data.get("item"), dict):
        yield from _repeated(output_slots([data["item"]]))
    elif kind in ("response.completed", "response.incomplete"):
        response = data.get("response")
        if isinstance(response, dict):
            yield from _repeated(output_slots(response.get("output")))


def _repeated(slots: Iterator[Slot]) -> Iterator[tuple[Slot, int | None]]:
    for slot in slots:
        yield slot, None


def _part_slots(part: JSONObject) -> Iterator[Slot]:
    if part.get("type") == "output_text" and isinstance(part.get("text"), str):
        yield (part, "text"), part["text"]


def output_slots(output: Any) -> Iterator[Slot]:
    """The texts of a Responses `output`: each message item's output_text parts."""
    for item in output if isinstance(output, list) else ():
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or []:
                if isinstance(part, dict):
                    yield from _part_slots(part)


# ------------------------------------------------------------------------------ assembly


def assemble(kind: str, chunks: list[bytes]) -> bytes | None:
    """A stream's events as the whole (non-stream) answer of its API; None when the events
    do not make one (the response cache then stores nothing)."""
    if not chunks:
        return None
    if kind == CHAT:
        return encode(stream_chunk_builder([decode_chunk(c) for c in chunks]))
    events = [parse_event(c)[1] for c in chunks]
    if kind == TEXT_COMPLETION:
        return _text_completion(events)
    if kind == MESSAGES:
        return _message(events)
    if kind == RESPONSES:
        for data in reversed(events):
            if isinstance(data, dict) and data.get("type") == "response.completed":
                return orjson.dumps(data["response"])
    return None


def _text_completion(events: list[Any]) -> bytes | None:
    first = next((e for e in events if isinstance(e, dict)), None)
    if first is None:
        return None
    texts: dict[int, list[str]] = {}
    finish: dict[int, Any] = {}
    usage = None
    for data in events:
        if not isinstance(data, dict):
            continue
        usage = data.get("usage") or usage
        for choice in data.get("choices") or []:
            index = int(choice.get("index") or 0)
            texts.setdefault(index, []).append(str(choice.get("text") or ""))
            if choice.get("finish_reason") is not None:
                finish[index] = choice["finish_reason"]
    choices = [
        {"text": "".join(parts), "index": i, "logprobs": None, "finish_reason": finish.get(i)}
        for i, parts in sorted(texts.items())
    ]
    body = {**first, "object": "text_completion", "choices": choices, "usage": usage}
    return orjson.dumps(body)


def _message(events: list[Any]) -> bytes | None:
    """Anthropic's events as the whole `message` (what the SDK's stream accumulates)."""
    message: JSONObject | None = None
    blocks: dict[int, JSONObject] = {}
    partial: dict[int, list[str]] = {}
    for data in events:
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "message_start":
            message = dict(data["message"])
        elif kind == "content_block_start":
            blocks[int(data["index"])] = dict(data["content_block"])
        elif kind == "content_block_delta":
            _add_delta(blocks, partial, int(data["index"]), data.get("delta") or {})
        elif kind == "message_delta" and message is not None:
            message.update(data.get("delta") or {})
            message["usage"] = {**(message.get("usage") or {}), **(data.get("usage") or {})}
    if message is None:
        return None
    for index, pieces in partial.items():
        try:
            blocks[index]["input"] = orjson.loads("".join(pieces) or "{}")
        except (KeyError, orjson.JSONDecodeError):
            return None
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return orjson.dumps(message)


def _add_delta(
    blocks: dict[int, JSONObject], partial: dict[int, list[str]], index: int, delta: JSONObject
) -> None:
    block = blocks.setdefault(index, {})
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + str(delta.get("text") or "")
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + str(delta.get("thinking") or "")
    elif kind == "signature_delta":
        block["signature"] = delta.get("signature")
    elif kind == "input_json_delta":
        partial.setdefault(index, []).append(str(delta.get("partial_json") or ""))
