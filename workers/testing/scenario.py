"""Scripted fake-upstream behaviour, chosen per request by the model name.

The model name is the one thing every provider carries (in the body for OpenAI and Anthropic, in
the URL path for Azure deployments, Gemini and Bedrock), so it is where a test says how the fake
must behave:

    <base-name>[~<directive>]...        e.g.  gpt-4o-mini~status=429~retry_after=2

Directives (times in seconds, fractions allowed):

    status=<code>          fail with that HTTP status and the provider's error body for it
    status=context_window  400 context_length_exceeded
    status=content_filter  400 content filter (Azure's `content_filter` body)
    retry_after=<s>        Retry-After on errors (plus x-ratelimit-* on 429)
    fail_first=<n>         apply the failure directives to the first n requests for this exact
                           model name only, then succeed; alone it means status=500
    hang                   accept and never answer until the client goes away
    ttft=<s>               delay before the first byte of a stream
    latency=<s>            delay before a non-stream answer
    chunk_delay=<s>        delay between stream events
    chunks=<n>             number of content chunks (default 6)
    disconnect_after=<n>   close the connection after n content chunks
    stream_error_after=<n> send the provider's in-stream error event after n content chunks
    tools=<n>              answer with n parallel tool calls
    cached=<n>             cached prompt tokens
    reasoning=<n>          reasoning tokens
    echo                   reply with the last user message text
    length                 finish because of the token limit
    reply_bytes=<n>        (OpenAI, non-stream) a completion of n bytes, sent in pieces
    vllm                   (OpenAI) answer as a vLLM server: `continue_final_message: true`
                           (with `add_generation_prompt: false`) continues the final
                           assistant message, sending only the rest of the answer

A typo must fail loudly, so an unknown directive or a bad value raises `ScenarioError`, which
every provider turns into a 400 naming the problem.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Literal

import msgspec

DIRECTIVE_SEPARATOR = "~"
DEFAULT_CHUNKS = 6
DEFAULT_FAILURE_STATUS = 500

ErrorKind = Literal["context_window", "content_filter"]


class ScenarioError(ValueError):
    """The model name holds a directive the fake does not understand."""


class Scenario(msgspec.Struct, frozen=True, kw_only=True):
    """What the fake does for one model name. `None` timings fall back to the server's."""

    name: str
    base: str
    status: int | None = None
    error_kind: ErrorKind | None = None
    retry_after_s: float | None = None
    fail_first: int = 0
    hang: bool = False
    ttft_s: float | None = None
    latency_s: float | None = None
    chunk_delay_s: float | None = None
    chunks: int = DEFAULT_CHUNKS
    disconnect_after: int | None = None
    stream_error_after: int | None = None
    tools: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    echo: bool = False
    length: bool = False
    reply_bytes: int | None = None
    vllm: bool = False
    # Behave like a model for a demo (issue #16): call one of the request's tools when it
    # has some and the user spoke last, answer valid JSON when response_format asks for it.
    auto: bool = False

    @property
    def has_failure(self) -> bool:
        return (
            self.status is not None
            or self.hang
            or self.disconnect_after is not None
            or self.stream_error_after is not None
        )

    def fails(self, ordinal: int) -> bool:
        """Whether the `ordinal`-th request (1-based) for this model name gets the failure."""
        return self.has_failure and (self.fail_first == 0 or ordinal <= self.fail_first)


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError("must be a finite number of seconds >= 0")
    return number


def _positive(value: str) -> int:
    number = _count(value)
    if number == 0:
        raise ValueError("must be at least 1")
    return number


def _status(value: str) -> dict[str, Any]:
    if value in ("context_window", "content_filter"):
        return {"status": 400, "error_kind": value}
    code = int(value)
    if not 400 <= code <= 599:
        raise ValueError("must be an HTTP error status (400-599)")
    return {"status": code}


# directive -> (field it sets, value parser); a flag's parser is None.
_VALUED: dict[str, tuple[str, Callable[[str], Any]]] = {
    "retry_after": ("retry_after_s", _seconds),
    "fail_first": ("fail_first", _positive),
    "ttft": ("ttft_s", _seconds),
    "latency": ("latency_s", _seconds),
    "chunk_delay": ("chunk_delay_s", _seconds),
    "chunks": ("chunks", _positive),
    "disconnect_after": ("disconnect_after", _count),
    "stream_error_after": ("stream_error_after", _count),
    "tools": ("tools", _positive),
    "cached": ("cached_tokens", _count),
    "reasoning": ("reasoning_tokens", _count),
    "reply_bytes": ("reply_bytes", _positive),
}
_FLAGS: dict[str, str] = {
    "hang": "hang",
    "echo": "echo",
    "length": "length",
    "vllm": "vllm",
    "auto": "auto",
}
KNOWN_DIRECTIVES: tuple[str, ...] = ("status", *_VALUED, *_FLAGS)


def _apply(directive: str, fields: dict[str, Any]) -> None:
    key, has_value, value = directive.partition("=")
    if key in _FLAGS and not has_value:
        fields[_FLAGS[key]] = True
        return
    if key == "status" and has_value:
        fields.update(_status(value))
        return
    if key in _VALUED and has_value:
        field, parse = _VALUED[key]
        fields[field] = parse(value)
        return
    if key in _FLAGS or key in _VALUED or key == "status":
        raise ScenarioError(f"directive {key!r} {'takes no' if key in _FLAGS else 'needs a'} value")
    raise ScenarioError(f"unknown directive {key!r} (known: {', '.join(KNOWN_DIRECTIVES)})")


@functools.lru_cache(maxsize=4096)
def parse_scenario(name: str) -> Scenario:
    """The Scenario a model name asks for; parsed once per distinct name."""
    base, *directives = name.split(DIRECTIVE_SEPARATOR)
    fields: dict[str, Any] = {}
    for directive in directives:
        try:
            _apply(directive, fields)
        except ScenarioError as exc:
            raise ScenarioError(f"model {name!r}: {exc}") from None
        except ValueError as exc:
            raise ScenarioError(f"model {name!r}: bad value in {directive!r}: {exc}") from None
    if fields.get("fail_first") and not _fails_by_itself(fields):
        fields["status"] = DEFAULT_FAILURE_STATUS
    return Scenario(name=name, base=base, **fields)


def _fails_by_itself(fields: dict[str, Any]) -> bool:
    return any(
        key in fields for key in ("status", "hang", "disconnect_after", "stream_error_after")
    )
