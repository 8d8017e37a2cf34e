"""A `ReplyPlan` rendered as Gemini answers: a pretty-printed GenerateContentResponse, or the
stream's events (`data: <compact JSON>` + CRLF CRLF, one whole response object per event).

Faithful details (gemini.md, examples/gemini/): key order as the service sends it (a
candidate's `finishReason` precedes `index` in plain answers and follows it in streams),
zero-valued counts omitted as proto JSON omits them, usageMetadata cumulative on every event,
thoughts counted even when not returned, function calls whole and signed on the first call.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import msgspec
import orjson

from workers.testing.gemini_errors import pretty
from workers.testing.reply import ReplyPlan
from workers.testing.tokens import count_tokens

JSONObject = dict[str, Any]
THOUGHT_TEXT = "**Planning the answer**\n\nThe user asked something; I will answer briefly."
# Finish reasons whose final candidate carries no content (filtered or failed output).
WITHOUT_CONTENT = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "IMAGE_OTHER",
        "NO_IMAGE",
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
        "OTHER",
        "FINISH_REASON_UNSPECIFIED",
    }
)
_FINISH_MESSAGES = {
    "MALFORMED_FUNCTION_CALL": "Malformed function call: print(default_api.get_weather(city=)",
    "UNEXPECTED_TOOL_CALL": "Unexpected tool call: default_api.unknown_tool",
}
_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]
SSE_CONTENT_TYPE = "text/event-stream"
LOGPROB = -0.25


class Shape(msgspec.Struct, frozen=True, kw_only=True):
    """What every event of one answer repeats, decided from the request and the scenario."""

    response_id: str
    model_version: str
    choices: int
    finish: str  # Gemini finishReason
    thoughts: bool  # thought summaries asked for (includeThoughts) and planned
    signs_text: bool  # a thinking answer in a conversation with functions: text is signed too
    logprobs: int | None  # None: not asked for; else top candidates per step


def sse_event(payload: JSONObject) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"


@functools.lru_cache(maxsize=1024)
def signature(response_id: str) -> str:
    """A thoughtSignature: opaque bytes to the client, valid base64 as the SDK demands."""
    return base64.b64encode(f"fake-thought-signature/{response_id}".encode()).decode()


@functools.lru_cache(maxsize=1024)
def _args(arguments: str) -> JSONObject:
    args: JSONObject = orjson.loads(arguments)
    return args


def usage_metadata(plan: ReplyPlan, candidates: int, thoughts: int) -> JSONObject:
    usage: JSONObject = {"promptTokenCount": plan.prompt_tokens}
    if candidates:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = plan.prompt_tokens + candidates + thoughts
    if plan.cached_tokens:
        usage["cachedContentTokenCount"] = plan.cached_tokens
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.prompt_tokens}]
    if plan.cached_tokens:
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": plan.cached_tokens}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _envelope(shape: Shape, candidates: list[JSONObject], usage: JSONObject) -> JSONObject:
    return {
        "candidates": candidates,
        "usageMetadata": usage,
        "modelVersion": shape.model_version,
        "responseId": shape.response_id,
    }


def blocked_response(plan: ReplyPlan, shape: Shape, reason: str) -> JSONObject:
    """A prompt refused before generation: promptFeedback and no candidates."""
    feedback = {"blockReason": reason, "safetyRatings": _SAFETY_RATINGS}
    usage = usage_metadata(plan, 0, 0)
    return {
        "promptFeedback": feedback,
        "usageMetadata": usage,
        "modelVersion": shape.model_version,
        "responseId": shape.response_id,
    }


def _text_part(text: str, shape: Shape, *, signed: bool) -> JSONObject:
    part: JSONObject = {"text": text}
    if signed:
        part["thoughtSignature"] = signature(shape.response_id)
    return part


def _call_part(plan: ReplyPlan, k: int, shape: Shape) -> JSONObject:
    call = plan.tool_calls[k]
    part: JSONObject = {"functionCall": {"name": call.name, "args": _args(call.arguments)}}
    if k == 0:  # parallel calls: the signature rides on the first one
        part["thoughtSignature"] = signature(shape.response_id)
    return part


def _logprobs(tokens: list[str], top: int) -> JSONObject:
    chosen = [{"token": token, "logProbability": LOGPROB} for token in tokens]
    others = [{"token": f"alt{j}", "logProbability": LOGPROB - 3 - j} for j in range(top)]
    return {
        "topCandidates": [{"candidates": [step, *others][:top]} for step in chosen],
        "chosenCandidates": chosen,
    }


def _final_candidate(shape: Shape, index: int) -> JSONObject:
    candidate: JSONObject = {"finishReason": shape.finish, "index": index}
    if shape.finish in _FINISH_MESSAGES:
        candidate["finishMessage"] = _FINISH_MESSAGES[shape.finish]
    if shape.finish == "SAFETY":
        candidate["safetyRatings"] = _SAFETY_RATINGS
    return candidate


# --------------------------------------------------------------------------- plain


def render_response(plan: ReplyPlan, shape: Shape) -> bytes:
    """The whole answer, pretty-printed as the service sends it."""
    usage = usage_metadata(
        plan, plan.completion_tokens - plan.reasoning_tokens, plan.reasoning_tokens
    )
    if shape.finish in WITHOUT_CONTENT:
        candidates = [_final_candidate(shape, index) for index in range(shape.choices)]
        return pretty(_envelope(shape, candidates, usage))
    parts = [{"text": THOUGHT_TEXT, "thought": True}] if shape.thoughts else []
    if plan.tool_calls:
        parts.extend(_call_part(plan, k, shape) for k in range(len(plan.tool_calls)))
    else:
        parts.append(_text_part(plan.text or "", shape, signed=shape.signs_text))
    candidates = []
    for index in range(shape.choices):
        candidate: JSONObject = {
            "content": {"parts": parts, "role": "model"},
            "finishReason": shape.finish,
            "index": index,
        }
        if shape.logprobs is not None:
            candidate["logprobsResult"] = _logprobs(list(plan.pieces), shape.logprobs)
        candidates.append(candidate)
    return pretty(_envelope(shape, candidates, usage))


# --------------------------------------------------------------------------- stream


class StreamRenderer:
    """One stream's events: an optional thought event, the content steps (a text piece or a
    whole function call each) and, for a finish without content, a closing event."""

    def __init__(self, plan: ReplyPlan, shape: Shape) -> None:
        self.plan = plan
        self.shape = shape
        self.visible = plan.completion_tokens - plan.reasoning_tokens
        self.has_content = shape.finish not in WITHOUT_CONTENT

    def opening(self) -> list[bytes]:
        if not self.shape.thoughts:
            return []
        part = {"text": THOUGHT_TEXT, "thought": True}
        return [self._event([part], 0, is_last=False)]

    def steps(self) -> list[bytes]:
        plan = self.plan
        if plan.tool_calls:
            count = len(plan.tool_calls)
            return [
                self._event(
                    [_call_part(plan, k, self.shape)],
                    self.visible * (k + 1) // count,
                    is_last=k == count - 1,
                )
                for k in range(count)
            ]
        events = []
        for i, piece in enumerate(plan.pieces):
            is_last = i == len(plan.pieces) - 1
            signed = is_last and self.shape.signs_text and self.has_content
            shown = "".join(plan.pieces[: i + 1])
            tokens = (
                self.visible
                if is_last
                else min(count_tokens(shown) * self.shape.choices, self.visible)
            )
            events.append(
                self._event([_text_part(piece, self.shape, signed=signed)], tokens, is_last=is_last)
            )
        return events

    def closing(self) -> list[bytes]:
        if self.has_content:
            return []
        candidates = [_final_candidate(self.shape, i) for i in range(self.shape.choices)]
        usage = usage_metadata(self.plan, self.visible, self.plan.reasoning_tokens)
        return [sse_event(_envelope(self.shape, candidates, usage))]

    def _event(self, parts: list[JSONObject], candidates_tokens: int, *, is_last: bool) -> bytes:
        finishes = is_last and self.has_content
        candidates = []
        for index in range(self.shape.choices):
            candidate: JSONObject = {"content": {"parts": parts, "role": "model"}, "index": index}
            if finishes:
                candidate["finishReason"] = self.shape.finish
            if (
                self.shape.logprobs is not None
                and "text" in parts[0]
                and not parts[0].get("thought")
            ):
                candidate["logprobsResult"] = _logprobs([parts[0]["text"]], self.shape.logprobs)
            candidates.append(candidate)
        usage = usage_metadata(self.plan, candidates_tokens, self.plan.reasoning_tokens)
        return sse_event(_envelope(self.shape, candidates, usage))


def stream_error(error: JSONObject) -> bytes:
    return sse_event(error)
