"""OpenAI Responses request (`POST /v1/responses`) -> the chat wire model, once.

`input` (a string or items: messages, function calls and their outputs, reasoning items,
images, files) after the conversation a `previous_response_id` names, `instructions`,
function `tools`, `tool_choice`, `text.format`, `reasoning.effort`, `max_output_tokens` and
the sampling fields become one chat request. Built-in tools, `background`, `conversation`
and anything else the chat model cannot carry are refused by name unless `drop_params`
(issue #18: never a silent drop). `metadata` and `store` stay with the gateway: they shape
the response object and its storage, not the provider call.

A reasoning item's `encrypted_content` is the gateway's own envelope around the signed
thinking blocks a provider returned (`REASONING_PREFIX`): handed back on the next turn, it
becomes those blocks again, so Claude's thinking survives a Responses tool loop.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec
import orjson

from workers.errors import InvalidRequest
from workers.params import GATEWAY_FIELDS, unsupported

JSONObject = dict[str, Any]
PROVIDER = "the /v1/responses translation"
REASONING_PREFIX = "sbr1:"


class ResponsesRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[JSONObject] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[JSONObject] | None = None
    tool_choice: str | JSONObject | None = None
    text: JSONObject | None = None
    reasoning: JSONObject | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    truncation: str | None = None
    include: list[str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    background: bool | None = None
    stream_options: JSONObject | None = None

    @property
    def is_stored(self) -> bool:
        return self.store is not False  # OpenAI stores by default


KNOWN_FIELDS = frozenset(ResponsesRequest.__struct_fields__) | GATEWAY_FIELDS
decode_responses_request = msgspec.json.Decoder(ResponsesRequest).decode
# Passed to the chat request as they are.
SAME_FIELDS = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "service_tier",
)


def input_items(request: ResponsesRequest) -> list[JSONObject]:
    """The request's own input as items (a string is one user message)."""
    if request.input is None:
        return []
    if isinstance(request.input, str):
        return [{"type": "message", "role": "user", "content": request.input}]
    return list(request.input)


def pack_reasoning(blocks: list[JSONObject]) -> str:
    return REASONING_PREFIX + base64.b64encode(orjson.dumps(blocks)).decode()


class Translator:
    def __init__(self, *, drop_params: bool) -> None:
        self.drop_params = drop_params
        self.messages: list[JSONObject] = []
        self.assistant: JSONObject | None = None  # the assistant turn being assembled

    def refuse(self, param: str, reason: str) -> None:
        unsupported(param, PROVIDER, reason, drop_params=self.drop_params)

    def chat_body(
        self, request: ResponsesRequest, body: JSONObject, history: list[JSONObject]
    ) -> JSONObject:
        self._refuse_unknown(request, body)
        if request.instructions:
            self.messages.append({"role": "system", "content": request.instructions})
        for item in [*history, *input_items(request)]:
            self._item(item)
        self._flush()
        chat: JSONObject = {"model": request.model, "messages": self.messages}
        for name in SAME_FIELDS:
            value = getattr(request, name)
            if value is not None:
                chat[name] = value
        if request.max_output_tokens is not None:
            chat["max_completion_tokens"] = request.max_output_tokens
        if request.top_logprobs is not None:
            chat["logprobs"] = True
            chat["top_logprobs"] = request.top_logprobs
        if request.reasoning and request.reasoning.get("effort") is not None:
            chat["reasoning_effort"] = request.reasoning["effort"]
        if request.text:
            self._text(request.text, chat)
        if request.tools:
            chat["tools"] = [t for t in map(self._tool, request.tools) if t is not None]
        if request.tool_choice is not None:
            self._tool_choice(request.tool_choice, chat)
        if request.stream:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
        return chat

    def _refuse_unknown(self, request: ResponsesRequest, body: JSONObject) -> None:
        for name in body:
            if name not in KNOWN_FIELDS:
                self.refuse(name, "the gateway cannot carry it to a deployment")
        if request.background:
            self.refuse("background", "background responses are not supported")
        if request.truncation not in (None, "disabled"):
            self.refuse("truncation", "only `disabled` is supported")

    # ---------------------------------------------------------------- items

    def _item(self, item: JSONObject) -> None:
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            self._message(item)
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id", "")),
                "type": "function",
                "function": {
                    "name": str(item.get("name", "")),
                    "arguments": str(item.get("arguments", "")),
                },
            }
            self._turn(fresh=False).setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            self._flush()
            output = item.get("output", "")
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": str(item.get("call_id", "")),
                    "content": output if isinstance(output, str) else self._output_text(output),
                }
            )
        elif kind == "reasoning":
            self._reasoning(item)
        else:
            self.refuse(f"input.{kind}", "no deployment behind the translation takes it")

    def _turn(self, *, fresh: bool) -> JSONObject:
        """The assistant turn being assembled; with `fresh`, a new one if it already has
        content or calls (reasoning opens a turn)."""
        if (
            self.assistant is not None
            and fresh
            and (self.assistant.get("content") or self.assistant.get("tool_calls"))
        ):
            self._flush()
        if self.assistant is None:
            self.assistant = {"role": "assistant", "content": None}
        return self.assistant

    def _flush(self) -> None:
        if self.assistant is not None:
            self.messages.append(self.assistant)
            self.assistant = None

    def _message(self, item: JSONObject) -> None:
        role = item.get("role")
        content = item.get("content", "")
        if role == "assistant":
            turn = self._turn(fresh=False)
            text = content if isinstance(content, str) else self._output_text(content)
            turn["content"] = (turn.get("content") or "") + text
            return
        if role not in ("user", "system", "developer"):
            raise InvalidRequest(
                f"unknown message role {str(role)[:40]!r}", param="input.role", code="invalid_value"
            )
        self._flush()
        parts = content if isinstance(content, str) else [self._part(p) for p in content]
        self.messages.append({"role": role, "content": parts})

    def _output_text(self, parts: Any) -> str:
        if not isinstance(parts, list):
            raise InvalidRequest("content must be a string or parts", param="input.content")
        texts = []
        for part in parts:
            if part.get("type") in ("output_text", "input_text", "text"):
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "refusal":
                texts.append(str(part.get("refusal", "")))
            else:
                self.refuse(f"input.content.{part.get('type')}", "only text carries here")
        return "".join(texts)

    def _part(self, part: JSONObject) -> JSONObject:
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            return {"type": "text", "text": str(part.get("text", ""))}
        if kind == "input_image":
            if not isinstance(part.get("image_url"), str):
                raise InvalidRequest(
                    "input_image needs an image_url (file_id is not supported)",
                    param="input.content.image_url",
                    code="invalid_value",
                )
            image: JSONObject = {"url": part["image_url"]}
            if part.get("detail") is not None:
                image["detail"] = part["detail"]
            return {"type": "image_url", "image_url": image}
        if kind == "input_file":
            fields = ("file_data", "file_id", "filename")
            file = {name: part[name] for name in fields if isinstance(part.get(name), str)}
            return {"type": "file", "file": file}
        raise InvalidRequest(
            f"unsupported input content type {str(kind)[:40]!r}",
            param="input.content.type",
            code="invalid_value",
        )

    def _reasoning(self, item: JSONObject) -> None:
        turn = self._turn(fresh=True)
        # The summary, else the reasoning text itself (`content`, reasoning_text parts).
        parts = item.get("summary") or item.get("content") or []
        text = "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
        if text:
            turn["reasoning_content"] = text
        encrypted = item.get("encrypted_content")
        if isinstance(encrypted, str) and encrypted:
            blocks = _unpack_reasoning(encrypted)
            if blocks is None:
                self.refuse("encrypted_content", "it was not made by this gateway")
            else:
                turn["thinking_blocks"] = blocks

    # ---------------------------------------------------------------- parameters

    def _text(self, text: JSONObject, chat: JSONObject) -> None:
        fmt = text.get("format") or {}
        kind = fmt.get("type")
        if kind == "json_schema":
            schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
            chat["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif kind == "json_object":
            chat["response_format"] = {"type": "json_object"}
        elif kind not in (None, "text"):
            raise InvalidRequest(
                f"unknown text.format type {str(kind)[:40]!r}",
                param="text.format",
                code="invalid_value",
            )
        if text.get("verbosity") is not None:
            chat["verbosity"] = text["verbosity"]

    def _tool(self, tool: JSONObject) -> JSONObject | None:
        if tool.get("type") != "function":
            self.refuse(f"tools.{tool.get('type')}", "built-in tools run only on OpenAI")
            return None
        function = {
            k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool
        }
        return {"type": "function", "function": function}

    def _tool_choice(self, choice: str | JSONObject, chat: JSONObject) -> None:
        if isinstance(choice, str):
            chat["tool_choice"] = choice
        elif choice.get("type") == "function":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            self.refuse(f"tool_choice.{choice.get('type')}", "only function tools translate")


def holds_encrypted_reasoning(items: list[JSONObject]) -> bool:
    """Whether `items` hold a reasoning item with the gateway's encrypted reasoning: signed
    thinking that should go back to the deployment that made it."""
    return any(
        item.get("type") == "reasoning"
        and str(item.get("encrypted_content") or "").startswith(REASONING_PREFIX)
        for item in items
    )


def _unpack_reasoning(encrypted: str) -> list[JSONObject] | None:
    if not encrypted.startswith(REASONING_PREFIX):
        return None
    try:
        blocks = orjson.loads(base64.b64decode(encrypted[len(REASONING_PREFIX) :]))
    except (binascii.Error, orjson.JSONDecodeError):
        return None
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        return None
    return blocks


def to_chat_body(body: JSONObject, history: list[JSONObject], *, drop_params: bool) -> JSONObject:
    """The chat body for a Responses body (gateway fields removed) after `history`."""
    request = msgspec.convert(body, ResponsesRequest)
    return Translator(drop_params=drop_params).chat_body(request, body, history)
