"""Gemini failures -> our error tree, in one place.

Gemini answers errors with a google.rpc.Status envelope,
`{"error": {"code", "message", "status", "details": [...]}}`, both as an HTTP error body and
as the last event of a stream that fails after it started. Details worth reading:
`ErrorInfo.reason` (API_KEY_INVALID arrives as a 400), `RetryInfo.retryDelay` (the wait on a
429, a duration string such as "17s") and `QuotaFailure` (which quota ran out).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from workers.errors import (
    AuthenticationFailed,
    ContextWindowExceeded,
    ModelNotFound,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    SwitchboardError,
    error_for_status,
    says_context_window_exceeded,
)
from workers.http import log_unreadable, parse_retry_after

PROVIDER = "gemini"
_TYPE_PREFIX = "type.googleapis.com/google.rpc."
# ErrorInfo reasons that mean the key itself is wrong (Gemini sends them with 400 or 403).
_KEY_REASONS = frozenset(
    {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED", "API_KEY_IP_BLOCKED"}
)
# A request without any key is a 403 PERMISSION_DENIED with this wording.
_NO_KEY_HINT = "unregistered callers"
# "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576)."
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class RpcStatus:
    """The parts of a google.rpc.Status the mapping reads."""

    __slots__ = ("code", "message", "status", "details")

    def __init__(self, code: int, message: str, status: str, details: list[Any]) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.details = details

    @classmethod
    def from_error(cls, error: Mapping[str, Any], http_status: int) -> RpcStatus:
        code = error.get("code")
        details = error.get("details")
        return cls(
            code=code if isinstance(code, int) and code >= 400 else http_status,
            message=str(error.get("message") or f"gemini answered HTTP {http_status}"),
            status=str(error.get("status") or ""),
            details=details if isinstance(details, list) else [],
        )

    def detail(self, kind: str) -> dict[str, Any] | None:
        for item in self.details:
            if isinstance(item, dict) and item.get("@type") == _TYPE_PREFIX + kind:
                return item
        return None

    @property
    def reason(self) -> str | None:
        info = self.detail("ErrorInfo")
        return str(info["reason"]) if info and info.get("reason") else None

    @property
    def retry_delay_s(self) -> float | None:
        info = self.detail("RetryInfo")
        delay = info.get("retryDelay") if info else None
        match = _DURATION.match(delay) if isinstance(delay, str) else None
        return float(match.group(1)) if match else None

    @property
    def is_daily_quota(self) -> bool:
        failure = self.detail("QuotaFailure") or {}
        violations = failure.get("violations") or []
        return any("PerDay" in str(v.get("quotaId", "")) for v in violations if isinstance(v, dict))


def error_from_response(
    http_status: int, raw: bytes, headers: Mapping[str, str], *, model: str
) -> SwitchboardError:
    """The error for a Gemini HTTP error response."""
    return classify(parse_status(raw, http_status), headers, model=model)


def error_from_event(error: Mapping[str, Any], *, model: str) -> SwitchboardError:
    """The error for an `{"error": {...}}` event in a stream that had already started."""
    return classify(RpcStatus.from_error(error, 500), {}, model=model)


def parse_status(raw: bytes, http_status: int) -> RpcStatus:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    # Non-SSE streams wrap everything in a JSON array, errors included.
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        return RpcStatus.from_error(error, http_status)
    # Not a google.rpc.Status: logged, never quoted (workers/upstream_text.py).
    log_unreadable(raw)
    return RpcStatus(http_status, f"gemini answered HTTP {http_status}", "", [])


def classify(rpc: RpcStatus, headers: Mapping[str, str], *, model: str) -> SwitchboardError:
    """The most specific error class for a google.rpc.Status (the one mapping)."""
    kwargs: dict[str, Any] = {"provider": PROVIDER, "model": model, "upstream_status": rpc.code}
    message = rpc.message
    code = rpc.status.lower() or None
    if rpc.code == 401 or rpc.reason in _KEY_REASONS or _NO_KEY_HINT in message:
        return AuthenticationFailed(message, **kwargs)
    if rpc.code == 400 and says_context_window_exceeded(message):
        return ContextWindowExceeded(message, param="messages", **kwargs)
    if rpc.code == 404:
        return ModelNotFound(message, param="model", **kwargs)
    retry_after_s = rpc.retry_delay_s
    if retry_after_s is None:
        retry_after_s = parse_retry_after(headers)
    if rpc.code == 429:
        if rpc.is_daily_quota:
            return QuotaExceeded(message, **kwargs)
        return RateLimited(message, retry_after_s=retry_after_s, **kwargs)
    if rpc.code == 503:
        return ServiceUnavailable(message, retry_after_s=retry_after_s, **kwargs)
    return error_for_status(
        rpc.code, message, code=code, provider=PROVIDER, model=model, retry_after_s=retry_after_s
    )
