"""OpenAI's Responses API (`POST /v1/responses`) as a fake: a text answer as the response
object, or as the event stream OpenAI sends (`response.created`, `response.in_progress`,
`response.output_item.added`, `response.content_part.added`, `response.output_text.delta`
per piece, `response.output_text.done`, `response.content_part.done`,
`response.output_item.done`, `response.completed`), each framed `event: <type>\\ndata:
<json>` with a `sequence_number` from 0, in the shapes of the openai SDK's types
(`openai.types.responses`). The answer follows the model name's scenario, like chat's: with
`~tools=N`, N `function_call` items (named after the request's function tools), their
arguments streamed as `response.function_call_arguments.delta|done`;
`tests/workers/testing/test_openai_responses_fake.py` has the SDK parse it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from workers.testing.reply import ReplyPlan, ToolCallPlan

JSONObject = dict[str, Any]
STREAM_ERROR = "The server had an error while processing your request. Sorry about that!"


def function_names(body: JSONObject) -> tuple[str, ...]:
    """The names of the request's function tools, which the scenario's calls use."""
    tools = body.get("tools")
    return tuple(
        str(tool["name"])
        for tool in (tools if isinstance(tools, list) else ())
        if isinstance(tool, dict) and tool.get("type") == "function" and tool.get("name")
    )


def input_texts(body: JSONObject) -> list[str]:
    """The request's input as texts: a string, or the text of its message items."""
    given = body.get("input")
    if isinstance(given, str):
        return [given]
    texts: list[str] = []
    for item in given if isinstance(given, list) else ():
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            texts.append(content)
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return texts


def _response(body: JSONObject, ids: JSONObject, model: str, status: str) -> JSONObject:
    """The response object as OpenAI writes it; `ids` holds its own and its item's ids."""
    return {
        "id": ids["response"],
        "object": "response",
        "created_at": ids["created"],
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": None, "summary": None},
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_logprobs": 0,
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _usage(plan: ReplyPlan) -> JSONObject:
    return {
        "input_tokens": plan.prompt_tokens,
        "input_tokens_details": {"cached_tokens": plan.cached_tokens},
        "output_tokens": plan.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": plan.reasoning_tokens},
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
    }


def _message(item_id: str, text: str, status: str) -> JSONObject:
    content = [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": content if status == "completed" else [],
        "role": "assistant",
    }


def _function_call(ids: JSONObject, index: int, call: ToolCallPlan, status: str) -> JSONObject:
    return {
        "id": f"fc_{ids['serial']:046x}{index:02x}",
        "type": "function_call",
        "status": status,
        "arguments": call.arguments if status == "completed" else "",
        "call_id": f"call_{ids['serial']:022x}{index:02x}",
        "name": call.name,
    }


def _output(ids: JSONObject, plan: ReplyPlan) -> list[JSONObject]:
    """The completed output items: the function calls, else the message."""
    if plan.tool_calls:
        return [_function_call(ids, i, c, "completed") for i, c in enumerate(plan.tool_calls)]
    return [_message(ids["item"], plan.text or "", "completed")]


class _Events:
    """Numbers the stream's events from 0, as OpenAI does."""

    def __init__(self) -> None:
        self.seq = 0
        self.out: list[bytes] = []

    def add(self, kind: str, **fields: Any) -> None:
        data = orjson.dumps({"type": kind, "sequence_number": self.seq, **fields})
        self.out.append(b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n")
        self.seq += 1


def render_whole(body: JSONObject, ids: JSONObject, model: str, plan: ReplyPlan) -> bytes:
    output = _output(ids, plan)
    whole = {**_response(body, ids, model, "completed"), "output": output, "usage": _usage(plan)}
    return orjson.dumps(whole)


def new_ids(serial: int) -> JSONObject:
    """A response's ids (counting up per request, like the fake's other ids)."""
    return {
        "response": f"resp_{serial:048x}",
        "item": f"msg_{serial:048x}",
        "created": int(time.time()),
        "serial": serial,  # numbers the function calls' ids
    }


def parse_body(raw: bytes) -> JSONObject | str:
    """The request body, or why it is refused."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "We could not parse the JSON body of your request."
    return body if isinstance(body, dict) else "The request body must be a JSON object."


def render_whole_background(
    body: JSONObject, ids: JSONObject, model: str, plan: ReplyPlan
) -> tuple[JSONObject, JSONObject]:
    """A `background: true` response as first answered (`queued`), and as it ends."""
    final = orjson.loads(render_whole(body, ids, model, plan))
    final["background"] = True
    queued = {**_response(body, ids, model, "queued"), "background": True}
    return queued, final


def render_stream(
    body: JSONObject,
    ids: JSONObject,
    model: str,
    plan: ReplyPlan,
    *,
    error_after: int | None = None,
) -> list[bytes]:
    """Every event of the stream; with `error_after`, the stream's `error` event after that
    many text deltas, and nothing after it (OpenAI's in-stream failure)."""
    text = plan.text or ""
    item_id = ids["item"]
    events = _Events()
    events.add("response.created", response=_response(body, ids, model, "in_progress"))
    events.add("response.in_progress", response=_response(body, ids, model, "in_progress"))
    if plan.tool_calls:
        _add_function_calls(events, ids, plan)
        final = {**_response(body, ids, model, "completed"), "usage": _usage(plan)}
        events.add("response.completed", response={**final, "output": _output(ids, plan)})
        return events.out
    events.add(
        "response.output_item.added", output_index=0, item=_message(item_id, "", "in_progress")
    )
    at = {"item_id": item_id, "output_index": 0, "content_index": 0}
    empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    events.add("response.content_part.added", **at, part=empty)
    for index, piece in enumerate(plan.pieces or ((text,) if text else ())):
        if index == error_after:
            events.add("error", code="server_error", message=STREAM_ERROR, param=None)
            return events.out
        events.add("response.output_text.delta", **at, delta=piece, logprobs=[])
    events.add("response.output_text.done", **at, text=text, logprobs=[])
    events.add("response.content_part.done", **at, part={**empty, "text": text})
    done = _message(item_id, text, "completed")
    events.add("response.output_item.done", output_index=0, item=done)
    final = {**_response(body, ids, model, "completed"), "output": [done], "usage": _usage(plan)}
    events.add("response.completed", response=final)
    return events.out


def _add_function_calls(events: _Events, ids: JSONObject, plan: ReplyPlan) -> None:
    """Each call as OpenAI streams it: added, its arguments in fragments, done."""
    for index, call in enumerate(plan.tool_calls):
        added = _function_call(ids, index, call, "in_progress")
        at = {"item_id": added["id"], "output_index": index}
        events.add("response.output_item.added", output_index=index, item=added)
        for fragment in call.fragments:
            events.add("response.function_call_arguments.delta", **at, delta=fragment)
        events.add(
            "response.function_call_arguments.done", **at, name=call.name, arguments=call.arguments
        )
        done = _function_call(ids, index, call, "completed")
        events.add("response.output_item.done", output_index=index, item=done)


def final_response(events: list[bytes]) -> JSONObject | None:
    """The response a rendered stream ends with (what the provider stores), if it ends."""
    last = events[-1] if events else b""
    if not last.startswith(b"event: response.completed\n"):
        return None
    data: JSONObject = orjson.loads(last.split(b"\ndata: ", 1)[1])
    return dict(data["response"])
