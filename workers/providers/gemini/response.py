"""GenerateContentResponse -> chat.completion: candidates, parts, finishReason, usageMetadata.

Used whole for plain calls and per event by the stream reader, so both give the same text,
tool-call ids, finish reasons and usage for the same Gemini answer.

finishReason policy (docs/providers/gemini.md):
- STOP -> stop, or tool_calls when the candidate has functionCall parts (Gemini has no
  tool-call reason); MAX_TOKENS and CONTINUATION -> length; the safety family -> content_filter.
- Reasons that mean the model produced no usable answer (MALFORMED_FUNCTION_CALL, OTHER, ...)
  raise ProviderError (retryable): a `stop` with empty content would hide the failure from
  the caller and from the gateway's retries and fallbacks. MISSING_THOUGHT_SIGNATURE is the
  caller's doing (it dropped our tool-call ids) and raises InvalidRequest.
- A value this table does not know yet maps to `stop` and is logged, so a new benign reason
  does not break calls.
- A prompt blocked before generation (promptFeedback.blockReason, no candidates) raises
  ContentPolicyViolation: it is a 400 on OpenAI and Azure too, and the gateway's
  content-policy fallbacks key on it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from workers.errors import ContentPolicyViolation, InvalidRequest, ProviderError, SwitchboardError
from workers.providers.gemini import ids
from workers.providers.gemini.errors import PROVIDER
from workers.providers.gemini.wire import (
    Candidate,
    GenerateContentResponse,
    LogprobsResult,
    Part,
    UsageMetadata,
)
from workers.wire import (
    ChatCompletion,
    ChatCompletionMessage,
    Choice,
    FunctionCall,
    ToolCall,
    Usage,
    make_usage,
)

log = logging.getLogger("switchboard.providers.gemini")

FINISH_REASONS: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "CONTINUATION": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "IMAGE_OTHER": "content_filter",
    "ESCALATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
    "PUP_LIMITED_DISABLED": "content_filter",
}
# finishReason -> why it is an error rather than a finish.
FAILED_FINISH_REASONS: dict[str, str] = {
    "MALFORMED_FUNCTION_CALL": "the model produced a function call that does not parse",
    "UNEXPECTED_TOOL_CALL": "the model called a function that was not declared",
    "TOO_MANY_TOOL_CALLS": "the model made too many tool calls in one turn",
    "MALFORMED_RESPONSE": "the model produced a malformed response",
    "NO_IMAGE": "the model was expected to produce an image and did not",
    "OTHER": "the model stopped for an unspecified reason",
    "FINISH_REASON_UNSPECIFIED": "the model stopped for an unspecified reason",
}
MISSING_SIGNATURE = "MISSING_THOUGHT_SIGNATURE"
SIGNATURE_BLOCK = "thought_signature"


def finish_reason(candidate: Candidate, *, has_calls: bool, model: str) -> str | None:
    """The OpenAI finish_reason for a candidate (None while it is still generating)."""
    reason = candidate.finish_reason
    if reason is None:
        return None
    if reason == "STOP" and has_calls:
        return "tool_calls"
    mapped = FINISH_REASONS.get(reason)
    if mapped is not None:
        return mapped
    raise_for_failed_finish(candidate, model=model)
    log.warning("gemini finishReason %s is not mapped; reporting stop", reason)
    return "stop"


def raise_for_failed_finish(candidate: Candidate, *, model: str) -> None:
    reason = candidate.finish_reason or ""
    detail = f": {candidate.finish_message}" if candidate.finish_message else ""
    if reason == MISSING_SIGNATURE:
        raise InvalidRequest(
            "gemini needs the thought signature of its earlier function calls: send the "
            f"assistant tool_calls back with their ids unchanged{detail}",
            param="messages",
            code="missing_thought_signature",
            provider=PROVIDER,
            model=model,
        )
    why = FAILED_FINISH_REASONS.get(reason)
    if why is not None:
        raise ProviderError(
            f"gemini finished with {reason} ({why}){detail}",
            code=reason.lower(),
            provider=PROVIDER,
            model=model,
        )


def blocked_prompt(response: GenerateContentResponse, *, model: str) -> SwitchboardError | None:
    feedback = response.prompt_feedback
    if response.candidates or feedback is None or not feedback.block_reason:
        return None
    detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
    return ContentPolicyViolation(
        f"gemini blocked the prompt (blockReason {feedback.block_reason}){detail}",
        param="messages",
        provider=PROVIDER,
        model=model,
    )


def usage_of(metadata: UsageMetadata) -> Usage:
    """usageMetadata in the hub's normal form: cached prompt tokens are already part of
    promptTokenCount; thoughts are billed as output but counted apart from candidates."""
    return make_usage(
        metadata.prompt_token_count + metadata.tool_use_prompt_token_count,
        metadata.candidates_token_count + metadata.thoughts_token_count,
        cached_tokens=metadata.cached_content_token_count,
        reasoning_tokens=metadata.thoughts_token_count,
    )


def response_id_of(response: GenerateContentResponse) -> str:
    return response.response_id or f"gemini-{uuid.uuid4().hex}"


class PartsDigest:
    """One candidate's parts sorted into OpenAI's slots."""

    __slots__ = ("texts", "thoughts", "calls", "signatures")

    def __init__(self, parts: list[Part], id_of: Callable[[int], str]) -> None:
        self.texts: list[str] = []
        self.thoughts: list[str] = []
        self.calls: list[ToolCall] = []
        self.signatures: list[dict[str, Any]] = []
        for part in parts:
            call = part.function_call
            if call is not None:
                call_id = ids.with_signature(id_of(len(self.calls)), part.thought_signature)
                arguments = orjson.dumps(call.args).decode()
                self.calls.append(
                    ToolCall(id=call_id, function=FunctionCall(name=call.name, arguments=arguments))
                )
                continue
            if part.thought_signature:
                self.signatures.append(
                    {"type": SIGNATURE_BLOCK, "signature": part.thought_signature}
                )
            if part.text is not None:
                (self.thoughts if part.thought else self.texts).append(part.text)


def digest(candidate: Candidate, response_id: str, first_call: int = 0) -> PartsDigest:
    """The candidate's parts; call ids count from `first_call` (streams number calls across
    events)."""
    parts = candidate.content.parts if candidate.content is not None else []

    def id_of(position: int) -> str:
        return ids.call_id(response_id, candidate.index, first_call + position)

    return PartsDigest(parts, id_of)


def logprobs_of(result: LogprobsResult | None) -> dict[str, Any] | None:
    """logprobsResult -> OpenAI's `{"content": [{token, logprob, bytes, top_logprobs}]}`."""
    if result is None:
        return None
    content = []
    for step, chosen in enumerate(result.chosen_candidates):
        tops = result.top_candidates[step].candidates if step < len(result.top_candidates) else []
        content.append(
            {
                "token": chosen.token,
                "logprob": chosen.log_probability,
                "bytes": list(chosen.token.encode()),
                "top_logprobs": [
                    {
                        "token": t.token,
                        "logprob": t.log_probability,
                        "bytes": list(t.token.encode()),
                    }
                    for t in tops
                ],
            }
        )
    return {"content": content, "refusal": None}


def to_completion(response: GenerateContentResponse, *, model: str) -> ChatCompletion:
    """A whole generateContent answer as a chat.completion."""
    blocked = blocked_prompt(response, model=model)
    if blocked is not None:
        raise blocked
    response_id = response_id_of(response)
    choices = [_choice(c, response_id, model) for c in sorted(response.candidates, key=_index)]
    if not choices:
        raise ProviderError("gemini answered without candidates", provider=PROVIDER, model=model)
    metadata = response.usage_metadata
    return ChatCompletion(
        id=response_id,
        created=int(time.time()),
        model=response.model_version or model,
        choices=choices,
        usage=usage_of(metadata) if metadata is not None else None,
    )


def _index(candidate: Candidate) -> int:
    return candidate.index


def _choice(candidate: Candidate, response_id: str, model: str) -> Choice:
    parts = digest(candidate, response_id)
    message = ChatCompletionMessage(
        role="assistant",
        content="".join(parts.texts) if parts.texts else None,
        tool_calls=parts.calls or None,
        reasoning_content="".join(parts.thoughts) if parts.thoughts else None,
        thinking_blocks=parts.signatures or None,
    )
    return Choice(
        index=candidate.index,
        message=message,
        finish_reason=finish_reason(candidate, has_calls=bool(parts.calls), model=model),
        logprobs=logprobs_of(candidate.logprobs_result),
    )
