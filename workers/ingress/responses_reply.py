"""Chat wire model -> OpenAI Responses replies: a whole `response` object, or the events of
a streamed one, in the order and with the `sequence_number`s the official SDKs check
(`response.created`, `response.in_progress`, `response.output_item.added`, ...,
`response.completed`). Events come pre-framed as `event: <type>\\ndata: <json>` for the
front door to relay without decoding (broker/sse_frames.py).

The builder also keeps what the store needs (workers/ingress/response_store.py): the output
items and the final response object."""

from __future__ import annotations

import os
from typing import Any

import orjson

from workers.ingress.responses_request import ResponsesRequest, pack_reasoning
from workers.wire import ChatCompletion, ChatCompletionChunk, Delta, ToolCallDelta, Usage

JSONObject = dict[str, Any]
# Why a response stopped early, by chat finish reason.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def event(kind: str, data: JSONObject) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data)


def usage_of(usage: Usage | None) -> JSONObject | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _text_part(text: str) -> JSONObject:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponseBuilder:
    """One response's output, from a whole chat completion or a stream of chunks."""

    def __init__(self, request: ResponsesRequest, response_id: str, created_at: int) -> None:
        self.request = request
        self.id = response_id
        self.created_at = created_at
        self.output: list[JSONObject] = []
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.background = False  # run in the background (a translated background: true)
        # Streaming state: the sequence number, the open item and what it has gathered.
        self.seq = 0
        self.started = False
        self.open: JSONObject | None = None
        self.index = 0  # the open item's output_index
        self.tool_index: int | None = None
        self.texts: list[str] = []
        self.blocks: list[JSONObject] = []

    # ---------------------------------------------------------------- the response object

    def body(self, status: str) -> JSONObject:
        request = self.request
        text_format = (request.text or {}).get("format") or {"type": "text"}
        incomplete = INCOMPLETE.get(self.finish_reason or "")
        if status == "completed" and incomplete:
            status = "incomplete"
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": self.background,
            "error": None,
            "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "metadata": request.metadata or {},
            "model": request.model,
            "output": self.output if status != "in_progress" else [],
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "previous_response_id": request.previous_response_id,
            "reasoning": {
                "effort": (request.reasoning or {}).get("effort"),
                "summary": (request.reasoning or {}).get("summary"),
            },
            "store": request.is_stored,
            "temperature": 1.0 if request.temperature is None else request.temperature,
            "text": {"format": text_format},
            "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
            "tools": request.tools or [],
            "top_p": 1.0 if request.top_p is None else request.top_p,
            "truncation": request.truncation or "disabled",
            "usage": usage_of(self.usage) if status != "in_progress" else None,
            "user": request.user,
        }

    def response(self, completion: ChatCompletion) -> bytes:
        choice = completion.choices[0] if completion.choices else None
        if choice is not None:
            message = choice.message
            self.finish_reason = choice.finish_reason
            blocks = list(message.thinking_blocks or ())
            if message.reasoning_content or blocks:
                self.output.append(self._reasoning_item(message.reasoning_content or "", blocks))
            if message.content:
                self.output.append(
                    {
                        "id": new_id("msg_"),
                        "type": "message",
                        "status": "completed",
                        "role": "assistant",
                        "content": [_text_part(message.content)],
                    }
                )
            for call in message.tool_calls or ():
                self.output.append(
                    {
                        "id": new_id("fc_"),
                        "type": "function_call",
                        "status": "completed",
                        "call_id": call.id,
                        "name": call.function.name,
                        "arguments": call.function.arguments,
                    }
                )
        self.usage = completion.usage
        return orjson.dumps(self.body("completed"))

    @staticmethod
    def _reasoning_item(text: str, blocks: list[JSONObject], item_id: str = "") -> JSONObject:
        item: JSONObject = {
            "id": item_id or new_id("rs_"),
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": text}] if text else [],
        }
        if blocks:
            item["encrypted_content"] = pack_reasoning(blocks)
        return item

    # ---------------------------------------------------------------- streaming

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return event(kind, data)

    def frame(self, batch: list[ChatCompletionChunk]) -> tuple[list[bytes], Usage | None]:
        out: list[bytes] = []
        usage = None
        for chunk in batch:
            if not self.started:
                out += self._start()
            if chunk.usage is not None and not chunk.choices:
                usage = chunk.usage
                continue
            for choice in chunk.choices[:1]:
                out += self._delta(choice.delta)
                if choice.finish_reason:
                    self.finish_reason = choice.finish_reason
        return out, usage

    def finish(self, usage: Usage | None) -> list[bytes]:
        out = [] if self.started else self._start()
        out += self._close()
        self.usage = usage
        body = self.body("completed")
        kind = "response.completed" if body["status"] == "completed" else "response.incomplete"
        return [*out, self._event(kind, response=body)]

    def _start(self) -> list[bytes]:
        self.started = True
        body = self.body("in_progress")
        return [
            self._event("response.created", response=body),
            self._event("response.in_progress", response=body),
        ]

    def _open_item(self, item: JSONObject) -> list[bytes]:
        out = self._close()
        self.open = item
        self.index = len(self.output)
        self.texts, self.blocks = [], []
        out.append(self._event("response.output_item.added", output_index=self.index, item=item))
        return out

    def _delta(self, delta: Delta) -> list[bytes]:
        out: list[bytes] = []
        if delta.reasoning_content or delta.thinking_blocks:
            out += self._reasoning(delta)
        if delta.content:
            out += self._text(delta.content)
        for call in delta.tool_calls or ():
            out += self._tool(call)
        return out

    def _reasoning(self, delta: Delta) -> list[bytes]:
        out: list[bytes] = []
        if self.open is None or self.open["type"] != "reasoning":
            item = {"id": new_id("rs_"), "type": "reasoning", "summary": []}
            out += self._open_item(item)
            part = {"type": "summary_text", "text": ""}
            out.append(
                self._event(
                    "response.reasoning_summary_part.added",
                    item_id=item["id"],
                    output_index=self.index,
                    summary_index=0,
                    part=part,
                )
            )
        assert self.open is not None
        if delta.reasoning_content:
            self.texts.append(delta.reasoning_content)
            out.append(
                self._event(
                    "response.reasoning_summary_text.delta",
                    item_id=self.open["id"],
                    output_index=self.index,
                    summary_index=0,
                    delta=delta.reasoning_content,
                )
            )
        self.blocks += list(delta.thinking_blocks or ())
        return out

    def _text(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        if self.open is None or self.open["type"] != "message":
            item = {
                "id": new_id("msg_"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            out += self._open_item(item)
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=self.index,
                    content_index=0,
                    part=_text_part(""),
                )
            )
        assert self.open is not None
        self.texts.append(text)
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=self.open["id"],
                output_index=self.index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return out

    def _tool(self, call: ToolCallDelta) -> list[bytes]:
        out: list[bytes] = []
        function = call.function
        is_open = self.open is not None and self.open["type"] == "function_call"
        if not is_open or self.tool_index != call.index:
            item = {
                "id": new_id("fc_"),
                "type": "function_call",
                "status": "in_progress",
                "call_id": call.id or new_id("call_"),
                "name": (function.name if function else None) or "",
                "arguments": "",
            }
            out += self._open_item(item)
            self.tool_index = call.index
        assert self.open is not None
        if function is not None and function.arguments:
            self.texts.append(function.arguments)
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=self.open["id"],
                    output_index=self.index,
                    delta=function.arguments,
                )
            )
        return out

    def _close(self) -> list[bytes]:
        item = self.open
        if item is None:
            return []
        self.open = None
        self.tool_index = None
        index = self.index
        text = "".join(self.texts)
        out: list[bytes] = []
        kind = item["type"]
        if kind == "reasoning":
            part = {"type": "summary_text", "text": text}
            common = {"item_id": item["id"], "output_index": index, "summary_index": 0}
            out.append(self._event("response.reasoning_summary_text.done", text=text, **common))
            out.append(self._event("response.reasoning_summary_part.done", part=part, **common))
            done = self._reasoning_item(text, self.blocks, item["id"])
        elif kind == "message":
            common = {"item_id": item["id"], "output_index": index, "content_index": 0}
            out.append(self._event("response.output_text.done", text=text, logprobs=[], **common))
            out.append(self._event("response.content_part.done", part=_text_part(text), **common))
            done = {**item, "status": "completed", "content": [_text_part(text)]}
        else:
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=self.index,
                    name=item["name"],
                    arguments=text,
                )
            )
            done = {**item, "status": "completed", "arguments": text}
        self.output.append(done)
        out.append(self._event("response.output_item.done", output_index=self.index, item=done))
        return out
