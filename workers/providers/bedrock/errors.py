"""Bedrock's failures mapped to the error tree, once, for HTTP errors and stream exceptions.

HTTP errors name their type in the `x-amzn-ErrorType` header (`ThrottlingException:http://...`;
the part before `:` counts) with a `{"message": ...}` body. Stream exception frames name it in
`:exception-type`, in lowerCamel (`throttlingException`), with the same body. Both reach
`bedrock_error`, which picks the most specific class by type, then by message, then by status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from workers.errors import (
    AuthenticationFailed,
    ContentPolicyViolation,
    ContextWindowExceeded,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    ProviderError,
    QuotaExceeded,
    RateLimited,
    RequestTimeout,
    ServiceUnavailable,
    SwitchboardError,
    error_for_status,
    says_context_window_exceeded,
)
from workers.http import log_unreadable, parse_retry_after

PROVIDER = "bedrock"

# Anthropic models on Bedrock refuse some output with this wording (Unconfirmed for others).
_CONTENT_POLICY_HINTS = ("content filtering policy", "blocked by content filtering")

# The status each modeled exception carries (service model `httpStatusCode`), for stream
# exception frames, which have no HTTP status of their own.
EXCEPTION_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "ConflictException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}

ErrorFactory = Callable[[str, dict[str, Any]], SwitchboardError]


def _validation(message: str, kwargs: dict[str, Any]) -> SwitchboardError:
    lowered = message.lower()
    if says_context_window_exceeded(message):
        return ContextWindowExceeded(message, **kwargs)
    if any(hint in lowered for hint in _CONTENT_POLICY_HINTS):
        return ContentPolicyViolation(message, **kwargs)
    return InvalidRequest(message, code="validation_error", **kwargs)


def _auth(message: str, kwargs: dict[str, Any]) -> SwitchboardError:
    return AuthenticationFailed(message, **kwargs)


def _provider_error(message: str, kwargs: dict[str, Any]) -> SwitchboardError:
    status = kwargs.get("upstream_status")
    return ProviderError(message, status=500 if status == 500 else 502, **kwargs)


# Exception type -> our error. Auth failures come from AWS's front end, not the service
# model, and all arrive as 403 (botocore raises ClientError with these codes).
_BY_TYPE: dict[str, ErrorFactory] = {
    "ValidationException": _validation,
    "ConflictException": lambda m, kw: InvalidRequest(m, code="conflict", **kw),
    "ServiceQuotaExceededException": lambda m, kw: QuotaExceeded(m, **kw),
    "AccessDeniedException": lambda m, kw: PermissionDenied(m, code="access_denied", **kw),
    "ResourceNotFoundException": lambda m, kw: ModelNotFound(m, param="model", **kw),
    "ModelTimeoutException": lambda m, kw: RequestTimeout(m, **kw),
    "ThrottlingException": lambda m, kw: RateLimited(m, **kw),
    # The model is still loading: an availability problem that passes, not a rate limit.
    "ModelNotReadyException": lambda m, kw: ServiceUnavailable(m, code="model_not_ready", **kw),
    "ServiceUnavailableException": lambda m, kw: ServiceUnavailable(m, **kw),
    "InternalServerException": _provider_error,
    "ModelErrorException": _provider_error,
    "ModelStreamErrorException": _provider_error,
    "UnrecognizedClientException": _auth,
    "ExpiredTokenException": _auth,
    "InvalidSignatureException": _auth,
    "IncompleteSignatureException": _auth,
    "MissingAuthenticationTokenException": _auth,
    "InvalidClientTokenId": _auth,
}


def bedrock_error(
    status: int,
    error_type: str,
    message: str,
    *,
    model: str,
    retry_after_s: float | None = None,
) -> SwitchboardError:
    """The most specific error for an exception type (either spelling) and its message."""
    name = error_type[:1].upper() + error_type[1:]
    kwargs: dict[str, Any] = {"provider": PROVIDER, "model": model, "upstream_status": status}
    if retry_after_s is not None and name in ("ThrottlingException", "ServiceUnavailableException"):
        kwargs["retry_after_s"] = retry_after_s
    factory = _BY_TYPE.get(name)
    if factory is not None:
        return factory(f"{name}: {message}", kwargs)
    return error_for_status(
        status, message, provider=PROVIDER, model=model, retry_after_s=retry_after_s
    )


def http_error(
    status: int, headers: Mapping[str, str], raw: bytes, *, model: str
) -> SwitchboardError:
    """The error for a non-2xx Converse / ConverseStream response."""
    payload = _json_object(raw)
    error_type = headers.get("x-amzn-ErrorType", "").partition(":")[0]
    if not error_type:
        # Some front ends put the type in the body instead (`__type`, `code`).
        error_type = str(payload.get("__type") or payload.get("code") or "").rpartition("#")[2]
    message = payload.get("message") or payload.get("Message")
    if not message:
        log_unreadable(raw)  # logged, never quoted (workers/upstream_text.py)
    text = str(message) if message else f"HTTP {status}"
    return bedrock_error(
        status, error_type, text, model=model, retry_after_s=parse_retry_after(headers)
    )


def stream_exception(error_type: str, payload: bytes, *, model: str) -> SwitchboardError:
    """The error for an `:message-type exception` frame after the stream started."""
    body = _json_object(payload)
    message = str(body.get("message") or body.get("Message") or "the model stream failed")
    original = body.get("originalMessage")
    if original:
        message = f"{message} (model said: {original})"
    name = error_type[:1].upper() + error_type[1:]
    return bedrock_error(EXCEPTION_STATUS.get(name, 500), error_type, message, model=model)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}
