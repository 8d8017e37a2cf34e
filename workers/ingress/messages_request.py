"""Anthropic Messages request (`POST /v1/messages`) -> the chat wire model, once.

The shape is checked by msgspec Structs; content blocks stay plain objects and are
translated one by one. What the chat model cannot carry is refused with a 400 naming it
(issue #18: never a silent drop), or dropped with `drop_params`. `top_k` travels as a
top-level field, which the Anthropic, Gemini and Bedrock adapters take, and OpenAI's and
Azure's adapters refuse by name (or drop, with `drop_params`).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import orjson

from workers.errors import InvalidRequest
from workers.params import GATEWAY_FIELDS, unsupported

JSONObject = dict[str, Any]
PROVIDER = "the /v1/messages translation"


class AnthropicMessage(msgspec.Struct, kw_only=True):
    role: Literal["user", "assistant"]
    content: str | list[JSONObject]


class MessagesRequest(msgspec.Struct, kw_only=True):
    """The documented parameters; `max_tokens` is required by /v1/messages only (the route
    checks), since /v1/messages/count_tokens takes the same body without it."""

    model: str
    messages: list[AnthropicMessage]
    max_tokens: int | None = None
    system: str | list[JSONObject] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[JSONObject] | None = None
    tool_choice: JSONObject | None = None
    thinking: JSONObject | None = None
    metadata: JSONObject | None = None
    service_tier: str | None = None


KNOWN_FIELDS = frozenset(MessagesRequest.__struct_fields__) | GATEWAY_FIELDS
decode_messages_request = msgspec.json.Decoder(MessagesRequest).decode
# Anthropic's stop reasons for OpenAI's finish reasons.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


class Translator:
    """One request's translation; `refuse(param, reason)` raises unless drop_params."""

    def __init__(self, *, drop_params: bool) -> None:
        self.drop_params = drop_params

    def refuse(self, param: str, reason: str) -> None:
        unsupported(param, PROVIDER, reason, drop_params=self.drop_params)

    def chat_body(self, request: MessagesRequest, body: JSONObject) -> JSONObject:
        for name in body:
            if name not in KNOWN_FIELDS:
                self.refuse(name, "the gateway cannot carry it to a translated deployment")
        messages: list[JSONObject] = []
        if request.system:
            messages.append({"role": "system", "content": self._system(request.system)})
        for message in request.messages:
            if message.role == "user":
                messages += self._user(message.content)
            else:
                messages.append(self._assistant(message.content))
        chat: JSONObject = {"model": request.model, "messages": messages}
        self._sampling(request, chat)
        if request.tools:
            chat["tools"] = [t for t in map(self._tool, request.tools) if t is not None]
        if request.tool_choice:
            self._tool_choice(request.tool_choice, chat)
        if request.stream:
            # Usage is needed for message_delta, whether or not the client reads it.
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
        return chat

    def _sampling(self, request: MessagesRequest, chat: JSONObject) -> None:
        if request.max_tokens is not None:
            chat["max_tokens"] = request.max_tokens
        if request.stop_sequences:
            chat["stop"] = request.stop_sequences
        for name in ("temperature", "top_p", "top_k", "thinking", "service_tier"):
            value = getattr(request, name)
            if value is not None:
                chat[name] = value
        if request.metadata:
            user = request.metadata.get("user_id")
            if isinstance(user, str):
                chat["user"] = user

    def _system(self, system: str | list[JSONObject]) -> str | list[JSONObject]:
        if isinstance(system, str):
            return system
        return [self._text_part(block, "system") for block in system]

    def _text_part(self, block: JSONObject, where: str) -> JSONObject:
        if block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise _bad(f"{where} blocks must be text blocks", where)
        part: JSONObject = {"type": "text", "text": block["text"]}
        if block.get("cache_control") is not None:
            part["cache_control"] = block["cache_control"]
        return part

    def _user(self, content: str | list[JSONObject]) -> list[JSONObject]:
        """A user turn: its tool results first (as tool messages, which OpenAI wants right
        after the assistant's calls), then the rest as one user message."""
        if isinstance(content, str):
            return [{"role": "user", "content": content}]
        results: list[JSONObject] = []
        parts: list[JSONObject] = []
        for block in content:
            kind = block.get("type")
            if kind == "tool_result":
                results.append(self._tool_result(block))
            elif kind == "text":
                parts.append(self._text_part(block, "messages.content"))
            elif kind == "image":
                parts.append(self._image(block))
            elif kind == "document":
                part = self._document(block)
                if part is not None:
                    parts.append(part)
            else:
                self.refuse(f"messages.content.{kind}", "no translated deployment takes it")
        if parts:
            results.append({"role": "user", "content": parts})
        return results

    def _image(self, block: JSONObject) -> JSONObject:
        source = block.get("source") or {}
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        elif source.get("type") == "url" and isinstance(source.get("url"), str):
            url = source["url"]
        else:
            raise _bad("an image's source must be base64 or url", "messages.content.image")
        return {"type": "image_url", "image_url": {"url": url}}

    def _document(self, block: JSONObject) -> JSONObject | None:
        source = block.get("source") or {}
        if source.get("type") == "base64":
            data = f"data:{source.get('media_type')};base64,{source.get('data')}"
            return {"type": "file", "file": {"file_data": data}}
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            return {"type": "text", "text": source["data"]}
        self.refuse("messages.content.document", "only base64 and text documents translate")
        return None

    def _tool_result(self, block: JSONObject) -> JSONObject:
        content = block.get("content", "")
        if isinstance(content, list):
            texts = []
            for part in content:
                if part.get("type") != "text":
                    self.refuse("tool_result.content", "only text tool results translate")
                    continue
                texts.append(str(part.get("text", "")))
            content = "".join(texts)
        if not isinstance(content, str):
            raise _bad("tool_result.content must be a string or blocks", "tool_result.content")
        if block.get("is_error"):
            content = f"Error: {content}"
        return {
            "role": "tool",
            "tool_call_id": str(block.get("tool_use_id", "")),
            "content": content,
        }

    def _assistant(self, content: str | list[JSONObject]) -> JSONObject:
        if isinstance(content, str):
            return {"role": "assistant", "content": content}
        texts: list[str] = []
        calls: list[JSONObject] = []
        thinking: list[JSONObject] = []
        for block in content:
            kind = block.get("type")
            if kind == "text":
                texts.append(str(block.get("text", "")))
            elif kind in ("thinking", "redacted_thinking"):
                thinking.append(block)  # signed: carried back unchanged
            elif kind == "tool_use":
                arguments = orjson.dumps(block.get("input", {})).decode()
                function = {"name": block.get("name", ""), "arguments": arguments}
                calls.append({"id": block.get("id", ""), "type": "function", "function": function})
            else:
                self.refuse(f"messages.content.{kind}", "no translated deployment takes it")
        message: JSONObject = {"role": "assistant", "content": "".join(texts) or None}
        if calls:
            message["tool_calls"] = calls
        if thinking:
            message["thinking_blocks"] = thinking
            text = "".join(str(b.get("thinking", "")) for b in thinking)
            if text:
                message["reasoning_content"] = text
        return message

    def _tool(self, tool: JSONObject) -> JSONObject | None:
        kind = tool.get("type")
        if kind not in (None, "custom"):
            self.refuse(f"tools.{kind}", "server tools run only on Anthropic")
            return None
        function: JSONObject = {"name": tool.get("name", "")}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        function["parameters"] = tool.get("input_schema") or {"type": "object"}
        chat_tool: JSONObject = {"type": "function", "function": function}
        if tool.get("cache_control") is not None:
            chat_tool["cache_control"] = tool["cache_control"]
        return chat_tool

    def _tool_choice(self, choice: JSONObject, chat: JSONObject) -> None:
        kind = choice.get("type")
        if kind == "auto":
            chat["tool_choice"] = "auto"
        elif kind == "any":
            chat["tool_choice"] = "required"
        elif kind == "none":
            chat["tool_choice"] = "none"
        elif kind == "tool":
            chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            raise _bad(f"unknown tool_choice type {str(kind)[:40]!r}", "tool_choice")
        if choice.get("disable_parallel_tool_use"):
            chat["parallel_tool_calls"] = False


def _bad(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value")


def to_chat_body(body: JSONObject, *, drop_params: bool) -> JSONObject:
    """The chat body for an Anthropic Messages body (gateway fields already removed)."""
    request = msgspec.convert(body, MessagesRequest)
    return Translator(drop_params=drop_params).chat_body(request, body)
