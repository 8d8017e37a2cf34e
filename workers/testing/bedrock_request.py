"""Reading a ConverseRequest the way Bedrock does: the checks it makes before any model runs
(each a 400 ValidationException in its own words) and what the fake's answer depends on.

The checks are the ones an adapter is most likely to trip: a conversation that does not
start with a user turn or does not alternate, empty content or blank text, tool blocks
without a toolConfig, tool results that answer no tool call of the previous turn, and values
outside the service model's ranges.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, NamedTuple

import msgspec

IMAGE_FORMATS = ("png", "jpeg", "gif", "webp")


class ConverseInput(NamedTuple):
    prompt_texts: list[str]  # system and message text, in order
    cached_prefix_texts: list[str]  # the texts before the last cachePoint
    has_cache_points: bool
    last_user_text: str
    tool_names: tuple[str, ...]


class RequestInvalid(Exception):
    """The 400 Bedrock answers; the message is its wording."""


def read_request(body: bytes) -> ConverseInput:
    try:
        request = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise RequestInvalid(f"Malformed input request: {exc}") from None
    if not isinstance(request, dict):
        raise RequestInvalid("Malformed input request, please reformat your input and try again.")
    _check_inference(request.get("inferenceConfig") or {})
    tools = _tool_names(request.get("toolConfig"))
    reader = _Reader(has_tool_config=request.get("toolConfig") is not None)
    for block in request.get("system") or ():
        reader.add_system(block)
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestInvalid("The messages field is required and must not be empty.")
    for i, message in enumerate(messages):
        reader.add_message(i, message)
    return ConverseInput(
        prompt_texts=reader.texts,
        cached_prefix_texts=reader.texts[: reader.cached_upto],
        has_cache_points=reader.has_cache_points,
        last_user_text=reader.last_user_text,
        tool_names=tools,
    )


def _check_inference(config: dict[str, Any]) -> None:
    for name, low, high in (("temperature", 0, 1), ("topP", 0, 1)):
        value = config.get(name)
        if value is not None and not low <= value <= high:
            raise RequestInvalid(
                f"1 validation error detected: Value '{value}' at 'inferenceConfig.{name}' "
                f"failed to satisfy constraint: Member must have value less than or equal to "
                f"{high}"
            )
    max_tokens = config.get("maxTokens")
    if max_tokens is not None and max_tokens < 1:
        raise RequestInvalid(
            f"1 validation error detected: Value '{max_tokens}' at 'inferenceConfig.maxTokens' "
            "failed to satisfy constraint: Member must have value greater than or equal to 1"
        )


def _tool_names(config: Any) -> tuple[str, ...]:
    if config is None:
        return ()
    tools = config.get("tools") if isinstance(config, dict) else None
    if not tools:
        raise RequestInvalid("The toolConfig field must contain at least one tool.")
    return tuple(t["toolSpec"]["name"] for t in tools if isinstance(t.get("toolSpec"), dict))


class _Reader:
    def __init__(self, *, has_tool_config: bool) -> None:
        self.has_tool_config = has_tool_config
        self.texts: list[str] = []
        self.cached_upto = 0
        self.has_cache_points = False
        self.last_user_text = ""
        self.previous_role = ""
        self.open_tool_uses: set[str] = set()

    def add_system(self, block: dict[str, Any]) -> None:
        if "cachePoint" in block:
            self._cache_point()
        elif "text" in block:
            self.texts.append(block["text"])

    def add_message(self, i: int, message: dict[str, Any]) -> None:
        role = message.get("role")
        if i == 0 and role != "user":
            raise RequestInvalid(
                "A conversation must start with a user message. Try again with a "
                "conversation that starts with a user message."
            )
        if role == self.previous_role or role not in ("user", "assistant"):
            raise RequestInvalid(
                "A conversation must alternate between user and assistant roles. Make sure "
                "the conversation alternates between user and assistant roles and try again."
            )
        content = message.get("content")
        if not content:
            raise RequestInvalid(
                f"The content field in the Message object at messages.{i} is empty. Add a "
                "ContentBlock object to the content field and try again."
            )
        self._check_tool_results(i, content, role)
        user_texts = [self._block(f"messages.{i}.content.{j}", b) for j, b in enumerate(content)]
        if role == "user" and any(t is not None for t in user_texts):
            self.last_user_text = "".join(t for t in user_texts if t is not None)
        self.previous_role = role

    def _block(self, where: str, block: dict[str, Any]) -> str | None:
        """Check one block; its text if it is a text block."""
        if "text" in block:
            if not block["text"].strip():
                raise RequestInvalid(
                    f"The text field in the ContentBlock object at {where} is blank. Add text "
                    "to the text field, and try again."
                )
            self.texts.append(block["text"])
            return str(block["text"])
        if "cachePoint" in block:
            self._cache_point()
        elif "toolUse" in block or "toolResult" in block:
            self._tool_block(where, block)
        elif "image" in block:
            _check_image(where, block["image"])
        return None

    def _tool_block(self, where: str, block: dict[str, Any]) -> None:
        if not self.has_tool_config:
            raise RequestInvalid(
                "The toolConfig field must be defined when using toolUse and toolResult "
                "content blocks."
            )
        if "toolUse" in block:
            self.open_tool_uses.add(block["toolUse"]["toolUseId"])
            return
        for item in block["toolResult"].get("content") or ():
            if "text" in item:
                self.texts.append(item["text"])
            elif "json" in item:
                self.texts.append(msgspec.json.encode(item["json"]).decode())

    def _check_tool_results(self, i: int, content: list[dict[str, Any]], role: str) -> None:
        """A user turn answers every toolUse of the assistant turn before it, and no other."""
        if role == "assistant":
            self.open_tool_uses = set()  # this turn's toolUse blocks are added as read
            return
        answered = {b["toolResult"]["toolUseId"] for b in content if "toolResult" in b}
        if answered != self.open_tool_uses:
            raise RequestInvalid(
                f"Expected toolResult blocks at messages.{i}.content for the following Ids: "
                f"{', '.join(sorted(self.open_tool_uses))}, but found: "
                f"{', '.join(sorted(answered))}"
            )
        self.open_tool_uses = set()

    def _cache_point(self) -> None:
        self.has_cache_points = True
        self.cached_upto = len(self.texts)


def _check_image(where: str, image: dict[str, Any]) -> None:
    if image.get("format") not in IMAGE_FORMATS:
        raise RequestInvalid(
            f"1 validation error detected: Value '{image.get('format')}' at '{where}.image."
            f"format' failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{', '.join(IMAGE_FORMATS)}]"
        )
    try:
        base64.b64decode(image.get("source", {}).get("bytes", ""), validate=True)
    except binascii.Error:
        raise RequestInvalid(f"Invalid base64 in {where}.image.source.bytes") from None
