"""A cached answer replayed as the stream its API sends (issue #19): the events a client's
SDK reads for a streaming request, made from the whole answer the cache holds. Each text
comes in one delta; the events are those the API documents, in its order.

- chat: per choice its whole message in one delta, then its finish_reason; the usage
  chunk when `stream_options.include_usage` asks.
- text completion: per choice its text, then its finish_reason; usage as chat.
- Anthropic Messages: message_start, each content block's start, delta and stop,
  message_delta (stop reason, usage), message_stop.
- OpenAI Responses: response.created, response.in_progress, each output item added, its
  text or arguments in one delta, done, then response.completed with the whole response.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from workers.hooks.api_shapes import MESSAGES, RESPONSES, TEXT_COMPLETION

JSONObject = dict[str, Any]


def replay(kind: str, body: bytes, *, include_usage: bool) -> list[bytes]:
    """The stream events (chunk JSON, or pre-framed events) for a whole answer."""
    answer: JSONObject = orjson.loads(body)
    if kind == MESSAGES:
        return message_events(answer)
    if kind == RESPONSES:
        return response_events(answer)
    if kind == TEXT_COMPLETION:
        return text_chunks(answer, include_usage=include_usage)
    return replay_chunks(answer, include_usage=include_usage)


def replay_chunks(completion: Mapping[str, Any], *, include_usage: bool) -> list[bytes]:
    """A cached chat completion as the chunks a stream of it would carry."""
    base = _base(completion, "chat.completion.chunk")
    chunks: list[JSONObject] = []
    for choice in completion.get("choices") or []:
        index = choice.get("index", 0)
        message = dict(choice.get("message") or {})
        delta: JSONObject = {"role": message.get("role", "assistant")}
        for name in ("content", "refusal", "reasoning_content"):
            if message.get(name) is not None:
                delta[name] = message[name]
        if message.get("tool_calls"):
            delta["tool_calls"] = [
                {**call, "index": i} for i, call in enumerate(message["tool_calls"])
            ]
        chunks.append({**base, "choices": [{"index": index, "delta": delta}]})
        finish = {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
        chunks.append({**base, "choices": [finish]})
    if include_usage and completion.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return [orjson.dumps(chunk) for chunk in chunks]


def text_chunks(completion: Mapping[str, Any], *, include_usage: bool) -> list[bytes]:
    """A cached text completion as its stream: each choice's text, then its finish_reason."""
    base = _base(completion, "text_completion")
    chunks: list[JSONObject] = []
    for choice in completion.get("choices") or []:
        index = choice.get("index", 0)
        text = {"text": choice.get("text") or "", "index": index, "logprobs": None}
        chunks.append({**base, "choices": [{**text, "finish_reason": None}]})
        finish = {"text": "", "index": index, "logprobs": None}
        chunks.append(
            {**base, "choices": [{**finish, "finish_reason": choice.get("finish_reason")}]}
        )
    if include_usage and completion.get("usage") is not None:
        chunks.append({**base, "choices": [], "usage": completion["usage"]})
    return [orjson.dumps(chunk) for chunk in chunks]


def _base(completion: Mapping[str, Any], kind: str) -> JSONObject:
    return {
        "id": completion.get("id", ""),
        "object": kind,
        "created": completion.get("created", int(time.time())),
        "model": completion.get("model", ""),
    }


def _event(kind: str, data: JSONObject) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data})


# ------------------------------------------------------------------------------ Anthropic


def message_events(message: JSONObject) -> list[bytes]:
    usage = dict(message.get("usage") or {})
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 0}
    events = [_event("message_start", {"message": start})]
    for index, block in enumerate(message.get("content") or []):
        events += _block_events(index, block)
    delta = {
        "stop_reason": message.get("stop_reason"),
        "stop_sequence": message.get("stop_sequence"),
    }
    events.append(_event("message_delta", {"delta": delta, "usage": usage}))
    events.append(_event("message_stop", {}))
    return events


def _block_events(index: int, block: JSONObject) -> list[bytes]:
    kind = block.get("type")
    deltas: list[JSONObject] = []
    empty = dict(block)
    if kind == "text":
        empty["text"] = ""
        deltas.append({"type": "text_delta", "text": block.get("text") or ""})
    elif kind == "thinking":
        empty.update(thinking="", signature="")
        deltas.append({"type": "thinking_delta", "thinking": block.get("thinking") or ""})
        if block.get("signature"):
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
    elif kind in ("tool_use", "server_tool_use"):
        empty["input"] = {}
        partial = orjson.dumps(block.get("input") or {}).decode()
        deltas.append({"type": "input_json_delta", "partial_json": partial})
    events = [_event("content_block_start", {"index": index, "content_block": empty})]
    events += [_event("content_block_delta", {"index": index, "delta": d}) for d in deltas]
    events.append(_event("content_block_stop", {"index": index}))
    return events


# ------------------------------------------------------------------------------ Responses


class _Sequenced:
    """Responses events carry a sequence number from 0."""

    def __init__(self) -> None:
        self.events: list[bytes] = []

    def add(self, kind: str, **fields: Any) -> None:
        self.events.append(_event(kind, {"sequence_number": len(self.events), **fields}))


def response_events(response: JSONObject) -> list[bytes]:
    out = _Sequenced()
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    out.add("response.created", response=pending)
    out.add("response.in_progress", response=pending)
    for index, item in enumerate(response.get("output") or []):
        _item_events(out, index, item)
    done = "response.incomplete" if response.get("status") == "incomplete" else "response.completed"
    out.add(done, response=response)
    return out.events


def _item_events(out: _Sequenced, index: int, item: JSONObject) -> None:
    kind = item.get("type")
    common = {"item_id": item.get("id"), "output_index": index}
    if kind == "message":
        out.add("response.output_item.added", output_index=index, item={**item, "content": []})
        for part_index, part in enumerate(item.get("content") or []):
            text = part.get("text") or ""
            at = {**common, "content_index": part_index}
            out.add("response.content_part.added", **at, part={**part, "text": ""})
            if part.get("type") == "output_text":
                out.add("response.output_text.delta", **at, delta=text, logprobs=[])
                out.add("response.output_text.done", **at, text=text, logprobs=[])
            out.add("response.content_part.done", **at, part=part)
    elif kind == "function_call":
        arguments = item.get("arguments") or ""
        added = {**item, "arguments": "", "status": "in_progress"}
        out.add("response.output_item.added", output_index=index, item=added)
        out.add("response.function_call_arguments.delta", **common, delta=arguments)
        out.add(
            "response.function_call_arguments.done",
            **common,
            name=item.get("name"),
            arguments=arguments,
        )
    else:  # reasoning and the rest: the item whole
        out.add("response.output_item.added", output_index=index, item=item)
    out.add("response.output_item.done", output_index=index, item=item)
