"""The answer a fake gives, decided once per request and independent of any wire format.

Each provider module renders a `ReplyPlan` in its own format, so every fake answers the same
scenario with the same text, tool calls and token counts. Words here are OpenAI's
(`finish_reason`, `prompt_tokens`); a provider module translates them as its adapter would.
"""

from __future__ import annotations

import functools
from typing import Literal

import msgspec

from workers.testing.scenario import Scenario
from workers.testing.tokens import count_tokens, split_text

FinishReason = Literal["stop", "length", "tool_calls"]
DEFAULT_TOOL_NAMES = ("get_weather", "get_time", "search")
ARGUMENT_FRAGMENTS = 3


class ToolCallPlan(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    arguments: str  # the JSON text
    fragments: tuple[str, ...]  # `arguments` cut at arbitrary points, as streams deliver it


class ReplyPlan(msgspec.Struct, frozen=True, kw_only=True):
    """One choice's answer plus the request's usage (which covers every choice)."""

    text: str | None  # None when the answer is only tool calls
    pieces: tuple[str, ...]  # `text` as content chunks
    tool_calls: tuple[ToolCallPlan, ...]
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def default_text(base_model: str) -> str:
    return f"This is a fake reply from {base_model}."


@functools.lru_cache(maxsize=4096)
def plan_reply(
    scenario: Scenario,
    *,
    prompt_tokens: int,
    last_user_text: str,
    tool_names: tuple[str, ...] = (),
    choices: int = 1,
) -> ReplyPlan:
    """The answer to a request; cached because benchmarks repeat the same request."""
    calls = _plan_tool_calls(scenario, last_user_text, tool_names)
    text = None if calls else (last_user_text if scenario.echo else default_text(scenario.base))
    visible = count_tokens(text) if text is not None else 0
    visible += sum(count_tokens(call.arguments) for call in calls)
    return ReplyPlan(
        text=text,
        pieces=split_text(text, scenario.chunks) if text is not None else (),
        tool_calls=calls,
        finish_reason=_finish_reason(scenario, calls),
        # Cached tokens are part of the prompt, so the prompt is at least that long.
        prompt_tokens=max(prompt_tokens, scenario.cached_tokens),
        completion_tokens=(visible + scenario.reasoning_tokens) * choices,
        cached_tokens=scenario.cached_tokens,
        reasoning_tokens=scenario.reasoning_tokens * choices,
    )


def _finish_reason(scenario: Scenario, calls: tuple[ToolCallPlan, ...]) -> FinishReason:
    if scenario.length:
        return "length"
    return "tool_calls" if calls else "stop"


def _plan_tool_calls(
    scenario: Scenario, last_user_text: str, tool_names: tuple[str, ...]
) -> tuple[ToolCallPlan, ...]:
    names = tool_names or DEFAULT_TOOL_NAMES
    return tuple(
        _plan_tool_call(names[i % len(names)], i, last_user_text) for i in range(scenario.tools)
    )


def _plan_tool_call(name: str, index: int, query: str) -> ToolCallPlan:
    arguments = msgspec.json.encode({"query": query[:64], "call": index}).decode()
    return ToolCallPlan(
        name=name, arguments=arguments, fragments=split_text(arguments, ARGUMENT_FRAGMENTS)
    )


def continued(text: str, pieces: int, prefix: str) -> tuple[str, tuple[str, ...]] | None:
    """What a provider continuing a partial answer sends: the rest of `text` after `prefix`,
    cut into as many pieces as `text` had left after it. None when `prefix` is not how
    `text` starts: a fake answers that with a 400, so a gateway that sent a prefix other
    than what its client was given (text lost or repeated) fails its test."""
    if not text.startswith(prefix):
        return None
    rest = text[len(prefix) :]
    covered = length = 0
    for piece in split_text(text, pieces):
        if length + len(piece) > len(prefix):
            break
        length += len(piece)
        covered += 1
    return rest, (split_text(rest, max(1, pieces - covered)) if rest else ())
