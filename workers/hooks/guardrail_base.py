"""What every guardrail is built on (issue #19): LiteLLM's `CustomGuardrail` hooks, the
block that answers a 400, and the text slots of a request and a response a guardrail reads
or rewrites."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from workers.errors import InvalidRequest


class GuardrailBlocked(InvalidRequest):
    """A guardrail refused the request or its answer: a 400 naming it and why."""

    default_code = "guardrail_blocked"

    def __init__(self, guardrail: str, reason: str) -> None:
        super().__init__(
            f"blocked by guardrail {guardrail!r}: {reason}",
            param=guardrail,
            code="guardrail_blocked",
        )
        self.guardrail = guardrail
        self.reason = reason


class CustomGuardrail:
    """The base of a custom guardrail, with LiteLLM's hook names. A hook blocks by raising
    (any exception; its message is the reason) and masks by returning the changed data (or
    response). `user_api_key_dict` has `key_alias`; `cache` is None."""

    def __init__(
        self,
        guardrail_name: str | None = None,
        event_hook: Any = None,
        default_on: bool = False,
        **kwargs: Any,
    ) -> None:
        self.guardrail_name = guardrail_name
        self.event_hook = event_hook
        self.default_on = default_on

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any] | None:
        return None

    async def async_moderation_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, call_type: str
    ) -> None:
        return None

    async def async_post_call_success_hook(
        self, data: dict[str, Any], user_api_key_dict: Any, response: Any
    ) -> Any:
        return None


# ------------------------------------------------------------------------------ texts


def request_texts(data: dict[str, Any]) -> Iterator[str]:
    for _, text in text_slots(data):
        yield text


def text_slots(data: dict[str, Any]) -> Iterator[tuple[tuple[Any, Any], str]]:
    """(container, key) and the text of every text a request carries, in any of the front
    doors' APIs: chat and Anthropic `messages` (string or text parts, Anthropic's
    tool_result contents) and Anthropic's `system`; embeddings' `input`; Responses'
    `instructions` and `input` (a string, or items: messages, function call outputs)."""
    system = data.get("system")
    if isinstance(system, str):
        yield (data, "system"), system
    elif isinstance(system, list):
        yield from _part_slots(system)
    if isinstance(data.get("instructions"), str):
        yield (data, "instructions"), data["instructions"]
    for message in data.get("messages") or []:
        if isinstance(message, dict):
            yield from _content_slots(message)
    given = data.get("input")
    if isinstance(given, str):
        yield (data, "input"), given
    elif isinstance(given, list):
        for i, item in enumerate(given):
            if isinstance(item, str):
                yield (given, i), item
            elif isinstance(item, dict):
                yield from _content_slots(item)
                if isinstance(item.get("output"), str):  # a function_call_output
                    yield (item, "output"), item["output"]


def _content_slots(holder: dict[str, Any]) -> Iterator[tuple[tuple[Any, Any], str]]:
    content = holder.get("content")
    if isinstance(content, str):
        yield (holder, "content"), content
    elif isinstance(content, list):
        yield from _part_slots(content)


def _part_slots(parts: list[Any]) -> Iterator[tuple[tuple[Any, Any], str]]:
    for part in parts:
        if not isinstance(part, dict):
            continue
        source = part.get("source")
        if isinstance(part.get("text"), str):
            yield (part, "text"), part["text"]
        elif part.get("type") == "tool_result":
            yield from _content_slots(part)
        elif isinstance(source, dict) and source.get("type") == "text":
            # An Anthropic plain-text document: its text is input like any other.
            if isinstance(source.get("data"), str):
                yield (source, "data"), source["data"]


def response_slots(response: dict[str, Any]) -> Iterator[tuple[tuple[Any, Any], str]]:
    """The texts of a whole answer: chat's messages, a text completion's texts, Anthropic's
    text blocks, Responses' output_text parts."""
    for choice in response.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            yield (message, "content"), message["content"]
        elif isinstance(choice.get("text"), str):
            yield (choice, "text"), choice["text"]
    if response.get("type") == "message":
        yield from _typed_parts(response.get("content"), "text")
    if response.get("object") == "response" and isinstance(response.get("output"), list):
        for item in response["output"]:
            if isinstance(item, dict) and item.get("type") == "message":
                yield from _typed_parts(item.get("content"), "output_text")


def _typed_parts(parts: Any, kind: str) -> Iterator[tuple[tuple[Any, Any], str]]:
    for part in parts if isinstance(parts, list) else ():
        if isinstance(part, dict) and part.get("type") == kind:
            yield from _text_of(part)


def _text_of(part: dict[str, Any]) -> Iterator[tuple[tuple[Any, Any], str]]:
    if isinstance(part.get("text"), str):
        yield (part, "text"), part["text"]


def rewrite_texts(slots: Iterator[tuple[tuple[Any, Any], str]], fn: Callable[[str], str]) -> bool:
    changed = False
    for (container, key), text in list(slots):
        new = fn(text)
        if new != text:
            container[key] = new
            changed = True
    return changed


# ------------------------------------------------------------------------------ built-ins
