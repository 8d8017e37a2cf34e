"""What the fake upstream received from a native adapter, read back into one shape.

Anthropic, Gemini and Bedrock each spell a conversation their own way; `read_conversation`
turns the recorded body into the same `Conversation` for all three, so a service-level test
can say once what must have reached the provider (system text, turns by role, tool calls and
results, images, thinking) and check it for every native provider.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, NamedTuple


class Text(NamedTuple):
    text: str
    signature: str | None = None  # Gemini's thoughtSignature on a thinking model's text


class Image(NamedTuple):
    media_type: str
    data: bytes | None  # inline bytes, decoded
    url: str | None = None  # a URL the provider fetches itself (Anthropic)


class Call(NamedTuple):
    name: str
    arguments: Any
    id: str | None  # Gemini calls carry no id
    signature: str | None = None  # Gemini's thoughtSignature


class Result(NamedTuple):
    ref: str  # the call id it answers; the function name on Gemini
    value: Any  # the result, JSON-decoded where it is JSON


class Thinking(NamedTuple):
    text: str
    signature: str | None


Item = Text | Image | Call | Result | Thinking


class Turn(NamedTuple):
    role: str  # "user" or "assistant"
    items: list[Item]


class Conversation(NamedTuple):
    system: list[str]
    turns: list[Turn]

    @property
    def roles(self) -> list[str]:
        return [turn.role for turn in self.turns]


def read_conversation(provider: str, body: dict[str, Any]) -> Conversation:
    return _READERS[provider](body)


def thinking_config(provider: str, body: dict[str, Any]) -> Any:
    """The native setting that asks the model to think (None when there is none)."""
    if provider == "gemini":
        return body.get("generationConfig", {}).get("thinkingConfig")
    if provider == "bedrock":
        return body.get("additionalModelRequestFields", {}).get("thinking")
    return body.get("thinking")


def cache_breakpoints(provider: str, body: dict[str, Any]) -> int:
    """How many prompt-cache breakpoints the request sets (cache_control / cachePoint)."""
    marker = '"cachePoint"' if provider == "bedrock" else '"cache_control"'
    return json.dumps(body).count(marker)


def _decoded(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


# --------------------------------------------------------------------------- Anthropic


def _anthropic(body: dict[str, Any]) -> Conversation:
    system = body.get("system") or []
    texts = [system] if isinstance(system, str) else [block["text"] for block in system]
    turns = [
        Turn(message["role"], _anthropic_items(message["content"])) for message in body["messages"]
    ]
    return Conversation(texts, turns)


def _anthropic_items(content: str | list[dict[str, Any]]) -> list[Item]:
    if isinstance(content, str):
        return [Text(content)]
    return [_anthropic_item(block) for block in content]


def _anthropic_item(block: dict[str, Any]) -> Item:
    kind = block["type"]
    if kind == "text":
        return Text(block["text"])
    if kind == "image":
        source = block["source"]
        if source["type"] == "url":
            return Image("", None, source["url"])
        return Image(source["media_type"], base64.b64decode(source["data"]))
    if kind == "tool_use":
        return Call(block["name"], block["input"], block["id"])
    if kind == "tool_result":
        content = block["content"]
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        return Result(block["tool_use_id"], _decoded(content))
    if kind == "thinking":
        return Thinking(block["thinking"], block.get("signature"))
    raise AssertionError(f"unexpected Anthropic block {block!r}")


# --------------------------------------------------------------------------- Gemini


def _gemini(body: dict[str, Any]) -> Conversation:
    system = body.get("systemInstruction") or {"parts": []}
    texts = [part["text"] for part in system["parts"]]
    turns = [
        Turn("assistant" if content.get("role") == "model" else "user", _gemini_items(content))
        for content in body["contents"]
    ]
    return Conversation(texts, turns)


def _gemini_items(content: dict[str, Any]) -> list[Item]:
    items: list[Item] = []
    for part in content["parts"]:
        if part.get("thought"):
            items.append(Thinking(part.get("text", ""), part.get("thoughtSignature")))
        elif "text" in part:
            items.append(Text(part["text"], part.get("thoughtSignature")))
        elif "inlineData" in part:
            data = part["inlineData"]
            items.append(Image(data["mimeType"], base64.b64decode(data["data"])))
        elif "functionCall" in part:
            call = part["functionCall"]
            items.append(
                Call(call["name"], call.get("args"), call.get("id"), part.get("thoughtSignature"))
            )
        elif "functionResponse" in part:
            response = part["functionResponse"]
            items.append(Result(response["name"], response["response"]))
        else:
            raise AssertionError(f"unexpected Gemini part {part!r}")
    return items


# --------------------------------------------------------------------------- Bedrock


def _bedrock(body: dict[str, Any]) -> Conversation:
    texts = [block["text"] for block in body.get("system", []) if "text" in block]
    turns = [
        Turn(
            message["role"], [_bedrock_item(b) for b in message["content"] if "cachePoint" not in b]
        )
        for message in body["messages"]
    ]
    return Conversation(texts, turns)


def _bedrock_item(block: dict[str, Any]) -> Item:
    if "text" in block:
        return Text(block["text"])
    if "image" in block:
        image = block["image"]
        return Image(f"image/{image['format']}", base64.b64decode(image["source"]["bytes"]))
    if "toolUse" in block:
        use = block["toolUse"]
        return Call(use["name"], use["input"], use["toolUseId"])
    if "toolResult" in block:
        result = block["toolResult"]
        [content] = result["content"]
        value = content["json"] if "json" in content else _decoded(content["text"])
        return Result(result["toolUseId"], value)
    if "reasoningContent" in block:
        text = block["reasoningContent"]["reasoningText"]
        return Thinking(text["text"], text.get("signature"))
    raise AssertionError(f"unexpected Bedrock block {block!r}")


_READERS: dict[str, Callable[[dict[str, Any]], Conversation]] = {
    "anthropic": _anthropic,
    "gemini": _gemini,
    "bedrock": _bedrock,
}
