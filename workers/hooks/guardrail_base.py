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
    """(container, key) and the text of every text a request carries."""
    for message in data.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield (message, "content"), content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield (part, "text"), part["text"]
    given = data.get("input")
    if isinstance(given, str):
        yield (data, "input"), given
    elif isinstance(given, list):
        for i, item in enumerate(given):
            if isinstance(item, str):
                yield (given, i), item


def response_slots(response: dict[str, Any]) -> Iterator[tuple[tuple[Any, Any], str]]:
    for choice in response.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            yield (message, "content"), message["content"]


def rewrite_texts(slots: Iterator[tuple[tuple[Any, Any], str]], fn: Callable[[str], str]) -> bool:
    changed = False
    for (container, key), text in list(slots):
        new = fn(text)
        if new != text:
            container[key] = new
            changed = True
    return changed


# ------------------------------------------------------------------------------ built-ins
