"""OpenAI messages -> Converse `system` blocks and alternating user/assistant messages.

- system and developer messages become top-level `system` text blocks, in order;
- every message's content is an array of blocks; consecutive messages of one role merge
  into one message (Converse wants user and assistant to alternate);
- assistant `tool_calls` become `toolUse` blocks with the arguments parsed to an object;
- `tool` messages become `toolResult` blocks of a user message, so the results of one turn
  travel together; a result that is a JSON object goes as `json`, anything else as `text`;
- `thinking_blocks` a previous answer carried go back first, unchanged, as `reasoningContent`;
- `cache_control` on a message, content part or system message adds a `cachePoint` after it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, NamedTuple

import orjson

from workers.errors import InvalidRequest
from workers.providers.base import Refuse
from workers.providers.bedrock.converse import (
    CachePointBlock,
    ContentBlock,
    ReasoningContentBlock,
    ReasoningText,
    SystemBlock,
    ToolResultBlock,
    ToolResultContent,
    ToolUseBlock,
)
from workers.providers.bedrock.converse import Message as ConverseMessage
from workers.providers.bedrock.errors import PROVIDER
from workers.providers.bedrock.media import document_block, image_block, image_media
from workers.providers.media import MediaFetches
from workers.wire import ContentPart, Message

CACHE_TTLS = ("5m", "1h")


class Conversation(NamedTuple):
    system: list[SystemBlock]
    messages: list[ConverseMessage]
    has_tool_blocks: bool


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, provider=PROVIDER)


def cache_point(cache_control: dict[str, Any] | None, param: str) -> CachePointBlock | None:
    if not cache_control:
        return None
    ttl = cache_control.get("ttl")
    if ttl is not None and ttl not in CACHE_TTLS:
        raise _invalid(f"cache_control.ttl must be one of {', '.join(CACHE_TTLS)}", param)
    return CachePointBlock(type="default", ttl=ttl)


class _Builder:
    def __init__(self, media: MediaFetches, refuse: Refuse) -> None:
        self.media = media
        self.refuse = refuse
        self.system: list[SystemBlock] = []
        self.turns: list[ConverseMessage] = []
        self.has_tool_blocks = False

    def add(self, i: int, message: Message) -> None:
        where = f"messages[{i}]"
        if message.name is not None:
            self.refuse(f"{where}.name", "Converse messages carry no participant name")
        if message.role in ("system", "developer"):
            self._add_system(message, where)
        elif message.role == "user":
            self._append("user", self._parts(message, where), message, where)
        elif message.role == "assistant":
            self._append("assistant", self._assistant(message, where), message, where)
        elif message.role == "tool":
            self.has_tool_blocks = True
            self._append("user", [self._tool_result(message, where)], message, where)
        else:
            raise _invalid("legacy `function` messages are not supported; use `tool`", where)

    def _append(self, role: str, blocks: list[ContentBlock], message: Message, where: str) -> None:
        point = cache_point(message.cache_control, f"{where}.cache_control")
        if point is not None:
            blocks.append(ContentBlock(cache_point=point))
        if not blocks:
            return  # an empty assistant turn says nothing; sending it would be rejected
        if self.turns and self.turns[-1].role == role:
            self.turns[-1].content.extend(blocks)
        else:
            self.turns.append(ConverseMessage(role=role, content=blocks))

    def _add_system(self, message: Message, where: str) -> None:
        if isinstance(message.content, str):
            if message.content:  # the service rejects empty system text
                self.system.append(SystemBlock(text=message.content))
        else:
            for j, part in enumerate(message.content or ()):
                if part.type != "text":
                    raise _invalid("system messages take only text", f"{where}.content[{j}]")
                self.system.append(SystemBlock(text=part.text or ""))
                point = cache_point(part.cache_control, f"{where}.content[{j}].cache_control")
                if point is not None:
                    self.system.append(SystemBlock(cache_point=point))
        point = cache_point(message.cache_control, f"{where}.cache_control")
        if point is not None:
            self.system.append(SystemBlock(cache_point=point))

    def _parts(self, message: Message, where: str) -> list[ContentBlock]:
        if message.content is None:
            return []
        if isinstance(message.content, str):
            return [ContentBlock(text=message.content)]
        blocks: list[ContentBlock] = []
        for j, part in enumerate(message.content):
            block = self._part(part, f"{where}.content[{j}]", j)
            if block is not None:
                blocks.append(block)
                point = cache_point(part.cache_control, f"{where}.content[{j}].cache_control")
                if point is not None:
                    blocks.append(ContentBlock(cache_point=point))
        return blocks

    def _part(self, part: ContentPart, param: str, ordinal: int) -> ContentBlock | None:
        if part.type in ("text", "refusal"):
            return ContentBlock(text=part.text if part.type == "text" else part.refusal or "")
        if part.type == "image_url" and part.image_url is not None:
            media = image_media(part.image_url.url, self.media, param)
            return ContentBlock(image=image_block(media, param))
        if part.type == "file" and part.file is not None:
            return ContentBlock(document=document_block(part.file, ordinal + 1, param))
        self.refuse(param, f"Converse does not take `{part.type}` content parts")
        return None

    def _assistant(self, message: Message, where: str) -> list[ContentBlock]:
        if message.function_call is not None or message.audio is not None:
            field = "function_call" if message.function_call is not None else "audio"
            raise _invalid(f"assistant `{field}` cannot be sent to Bedrock", f"{where}.{field}")
        blocks = [
            _reasoning_block(block, f"{where}.thinking_blocks[{k}]")
            for k, block in enumerate(message.thinking_blocks or ())
        ]
        # An empty text next to tool calls is what OpenAI clients send back; Bedrock
        # rejects blank text blocks, and dropping it loses nothing.
        blocks.extend(b for b in self._parts(message, where) if b.text != "")
        for k, call in enumerate(message.tool_calls or ()):
            self.has_tool_blocks = True
            arguments = _arguments(call.function.arguments, f"{where}.tool_calls[{k}]")
            blocks.append(
                ContentBlock(
                    tool_use=ToolUseBlock(
                        tool_use_id=call.id, name=call.function.name, input=arguments
                    )
                )
            )
        return blocks

    def _tool_result(self, message: Message, where: str) -> ContentBlock:
        content: list[ToolResultContent] = []
        if isinstance(message.content, str):
            content.append(_result_text(message.content))
        for j, part in enumerate(message.content if isinstance(message.content, list) else ()):
            param = f"{where}.content[{j}]"
            if part.type == "text":
                content.append(_result_text(part.text or ""))
            elif part.type == "image_url" and part.image_url is not None:
                media = image_media(part.image_url.url, self.media, param)
                content.append(ToolResultContent(image=image_block(media, param)))
            else:
                self.refuse(param, f"tool results cannot hold `{part.type}` parts")
        result = ToolResultBlock(tool_use_id=message.tool_call_id or "", content=content)
        return ContentBlock(tool_result=result)


def _result_text(text: str) -> ToolResultContent:
    if text.startswith("{"):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return ToolResultContent(json=value)
    return ToolResultContent(text=text)


def _arguments(arguments: str, param: str) -> Any:
    if not arguments.strip():
        return {}
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise _invalid(
            f"tool call arguments are not JSON: {exc}", f"{param}.function.arguments"
        ) from exc


def _reasoning_block(block: dict[str, Any], param: str) -> ContentBlock:
    """A thinking block from a previous answer (see response.thinking_block), unchanged."""
    kind = block.get("type")
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        text = ReasoningText(text=block["thinking"], signature=block.get("signature"))
        return ContentBlock(reasoning_content=ReasoningContentBlock(reasoning_text=text))
    if kind == "redacted_thinking" and isinstance(block.get("data"), str):
        try:
            data = base64.b64decode(block["data"], validate=True)
        except binascii.Error as exc:
            raise _invalid(f"redacted thinking data is not base64: {exc}", param) from exc
        return ContentBlock(reasoning_content=ReasoningContentBlock(redacted_content=data))
    raise _invalid(
        "thinking blocks are {type: thinking, thinking, signature} or "
        "{type: redacted_thinking, data}",
        param,
    )


def translate_messages(
    messages: list[Message], media: MediaFetches, refuse: Refuse
) -> Conversation:
    builder = _Builder(media, refuse)
    for i, message in enumerate(messages):
        builder.add(i, message)
    return Conversation(builder.system, builder.turns, builder.has_tool_blocks)
