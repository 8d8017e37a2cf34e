"""The fake's answer in Bedrock's words: a Converse JSON body or ConverseStream frames.

One `Answer` is decided per request (shared plan, Bedrock stopReason and usage) and rendered
either way, so a plain call and a stream for the same scenario agree. Shapes follow the
examples (`converse.json`, `converse_stream_*.events.json`): reasoning block first, then text,
then tool uses; text blocks have no contentBlockStart; tool input streams as JSON fragments
after an empty one; usage comes only in the closing `metadata` event.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, NamedTuple

import msgspec

from workers.testing.bedrock_errors import BedrockScenario
from workers.testing.bedrock_frames import event_frame
from workers.testing.bedrock_request import ConverseInput
from workers.testing.reply import ReplyPlan, plan_reply
from workers.testing.tokens import CHARS_PER_TOKEN, count_prompt_tokens, split_text

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
SIGNATURE = "EqoBCkgIARABGAIiQGx3Zm9vYmFy"
LATENCY_MS = 120
_THOUGHT = "The user asks a question; I consider what they need and answer plainly. "
REASONING_PIECES = 3
_encode = msgspec.json.Encoder().encode


class Answer(NamedTuple):
    plan: ReplyPlan
    stop_reason: str
    usage: dict[str, int]  # in the order stream metadata lists it
    reasoning: str | None


def decide(bedrock: BedrockScenario, converse: ConverseInput) -> Answer:
    scenario = bedrock.scenario
    plan = plan_reply(
        scenario,
        prompt_tokens=count_prompt_tokens(converse.prompt_texts),
        last_user_text=converse.last_user_text,
        tool_names=converse.tool_names,
    )
    reasoning = None
    if scenario.reasoning_tokens:
        reasoning = (_THOUGHT * (1 + scenario.reasoning_tokens // 10))[
            : scenario.reasoning_tokens * CHARS_PER_TOKEN
        ]
    return Answer(
        plan=plan,
        stop_reason=bedrock.stop_reason or STOP_REASONS[plan.finish_reason],
        usage=_usage(plan, converse),
        reasoning=reasoning,
    )


def _usage(plan: ReplyPlan, converse: ConverseInput) -> dict[str, int]:
    """Bedrock's inputTokens leave out cache reads and writes; totalTokens has them all.

    With `cached=<n>` the prompt reads n tokens from the cache; otherwise a request with
    cache points writes the text before its last cache point, as a first call would."""
    read = plan.cached_tokens
    written = 0
    if not read and converse.has_cache_points and converse.cached_prefix_texts:
        written = min(count_prompt_tokens(converse.cached_prefix_texts), plan.prompt_tokens)
    usage = {
        "inputTokens": plan.prompt_tokens - read - written,
        "outputTokens": plan.completion_tokens,
        "totalTokens": plan.total_tokens,
    }
    if read or converse.has_cache_points:
        usage.update(cacheReadInputTokens=read, cacheWriteInputTokens=written)
    return usage


def tool_use_id() -> str:
    return "tooluse_" + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def render_converse(answer: Answer) -> bytes:
    content: list[dict[str, Any]] = []
    if answer.reasoning is not None:
        text = {"text": answer.reasoning, "signature": SIGNATURE}
        content.append({"reasoningContent": {"reasoningText": text}})
    if answer.plan.text is not None:
        content.append({"text": answer.plan.text})
    for call in answer.plan.tool_calls:
        use = {"toolUseId": tool_use_id(), "name": call.name, "input": _object(call.arguments)}
        content.append({"toolUse": use})
    return _encode(
        {
            "metrics": {"latencyMs": LATENCY_MS},
            "output": {"message": {"content": content, "role": "assistant"}},
            "stopReason": answer.stop_reason,
            "usage": dict(sorted(answer.usage.items())),
        }
    )


def _object(arguments: str) -> Any:
    return msgspec.json.decode(arguments)


class StreamFrames(NamedTuple):
    opening: list[bytes]  # messageStart and any reasoning block
    steps: list[list[bytes]]  # one per content chunk (text piece or tool-input fragment)
    closing: list[bytes]  # messageStop, metadata


class _Framer:
    """Numbers frames (for padding) and content blocks as it renders them."""

    def __init__(self) -> None:
        self.ordinal = 0
        self.block = -1

    def frame(self, event_type: str, payload: dict[str, Any]) -> bytes:
        self.ordinal += 1
        return event_frame(event_type, payload, self.ordinal)

    def delta(self, delta: dict[str, Any]) -> bytes:
        return self.frame("contentBlockDelta", {"contentBlockIndex": self.block, "delta": delta})

    def stop(self) -> bytes:
        return self.frame("contentBlockStop", {"contentBlockIndex": self.block})


def render_stream(answer: Answer) -> StreamFrames:
    framer = _Framer()
    opening = [framer.frame("messageStart", {"role": "assistant"})]
    if answer.reasoning is not None:
        framer.block += 1
        for piece in split_text(answer.reasoning, REASONING_PIECES):
            opening.append(framer.delta({"reasoningContent": {"text": piece}}))
        opening.append(framer.delta({"reasoningContent": {"signature": SIGNATURE}}))
        opening.append(framer.stop())
    steps: list[list[bytes]] = []
    if answer.plan.text is not None:
        framer.block += 1
        steps.extend([framer.delta({"text": piece})] for piece in answer.plan.pieces)
        steps[-1].append(framer.stop())
    for call in answer.plan.tool_calls:
        framer.block += 1
        start = {"toolUse": {"toolUseId": tool_use_id(), "name": call.name}}
        steps.append(
            [
                framer.frame(
                    "contentBlockStart", {"contentBlockIndex": framer.block, "start": start}
                ),
                framer.delta({"toolUse": {"input": ""}}),
            ]
        )
        steps.extend([framer.delta({"toolUse": {"input": f}})] for f in call.fragments)
        steps[-1].append(framer.stop())
    closing = [
        framer.frame("messageStop", {"stopReason": answer.stop_reason}),
        framer.frame("metadata", {"usage": answer.usage, "metrics": {"latencyMs": LATENCY_MS}}),
    ]
    return StreamFrames(opening, steps, closing)
