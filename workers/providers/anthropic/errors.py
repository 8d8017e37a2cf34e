"""Anthropic's failures -> our error tree, in one place for HTTP errors and stream `error` events.

Anthropic bodies are `{"type": "error", "error": {"type": <error type>, "message": ...},
"request_id": ...}`. An `error` event after a 200 carries only the error type, so the type is
turned back into the status Anthropic uses for it and both paths share `classify`.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Mapping
from typing import Any

import msgspec

from workers.errors import (
    ContentPolicyViolation,
    ContextWindowExceeded,
    ModelNotFound,
    QuotaExceeded,
    RequestTooLarge,
    SwitchboardError,
    error_for_status,
    says_context_window_exceeded,
)
from workers.http import log_unreadable, parse_retry_after

PROVIDER = "anthropic"

# error.type -> the HTTP status Anthropic answers it with (anthropic.md section 5).
STATUS_OF_ERROR_TYPE: Mapping[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
# Context overflows ("prompt is too long: 208310 tokens > 200000 maximum", and the check on
# prompt + max_tokens: "input length and `max_tokens` exceed context limit: 178959 + 64000 >
# 200000") are recognised by workers.errors.says_context_window_exceeded.
# Anthropic's output filter answers 400 "Output blocked by content filtering policy".
_CONTENT_FILTER_HINT = "content filtering policy"
_RATE_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


class _ErrorObject(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class _ErrorBody(msgspec.Struct):
    error: _ErrorObject | None = None


_decode_error_body = msgspec.json.Decoder(_ErrorBody).decode


def error_from_response(
    status: int, headers: Mapping[str, str], raw: bytes, *, model: str
) -> SwitchboardError:
    """The error for a non-2xx answer, from its body and its retry headers."""
    error_type, message = parse_error_body(raw)
    retry_after_s = parse_retry_after(headers)
    if retry_after_s is None and status == 429:
        retry_after_s = rate_limit_reset_s(headers)
    return classify(
        status,
        error_type,
        message or f"{PROVIDER} answered HTTP {status}",
        model=model,
        retry_after_s=retry_after_s,
    )


def error_from_event(error_type: str, message: str, *, model: str) -> SwitchboardError:
    """The error for an `event: error` that arrives after the stream started."""
    status = STATUS_OF_ERROR_TYPE.get(error_type, 500)
    text = message or f"{PROVIDER} failed mid-stream with {error_type}"
    return classify(status, error_type, text, model=model)


def classify(
    status: int,
    error_type: str | None,
    message: str,
    *,
    model: str,
    retry_after_s: float | None = None,
) -> SwitchboardError:
    """The most specific error class for an Anthropic status, error type and message."""
    kwargs: dict[str, Any] = {"provider": PROVIDER, "model": model, "upstream_status": status}
    lowered = message.lower()
    if error_type == "billing_error" or status == 402:
        # Out of credit: a retry or a wait will not help, unlike a rate limit.
        return QuotaExceeded(message, **kwargs)
    if error_type == "request_too_large" or status == 413:
        return RequestTooLarge(message, **kwargs)
    if status == 400 and says_context_window_exceeded(message):
        return ContextWindowExceeded(message, param="messages", **kwargs)
    if status == 400 and _CONTENT_FILTER_HINT in lowered:
        return ContentPolicyViolation(message, **kwargs)
    if status == 404 and lowered.startswith("model:"):
        return ModelNotFound(message, param="model", **kwargs)
    return error_for_status(
        status, message, provider=PROVIDER, model=model, retry_after_s=retry_after_s
    )


def parse_error_body(raw: bytes) -> tuple[str | None, str]:
    """(error type, message) of an Anthropic error body; a foreign body is logged, never
    quoted (workers/upstream_text.py), and the message is left empty."""
    try:
        body = _decode_error_body(raw)
    except msgspec.DecodeError:
        body = _ErrorBody()
    if body.error is None:
        log_unreadable(raw)
        return None, ""
    return body.error.type, body.error.message


def rate_limit_reset_s(headers: Mapping[str, str]) -> float | None:
    """Seconds until the exhausted `anthropic-ratelimit-*` limits reset (RFC 3339 times);
    used when a 429 comes without `retry-after`."""
    waits: list[float] = []
    now = datetime.datetime.now(datetime.UTC)
    for limit in _RATE_LIMITS:
        if headers.get(f"anthropic-ratelimit-{limit}-remaining") != "0":
            continue
        reset = headers.get(f"anthropic-ratelimit-{limit}-reset")
        with contextlib.suppress(TypeError, ValueError):
            when = datetime.datetime.fromisoformat(reset or "")
            waits.append(max(0.0, (when - now).total_seconds()))
    return max(waits) if waits else None
