"""Anthropic's error responses: `{"type": "error", "error": {type, message}, "request_id"}`
per status, with `request-id`, `retry-after`, `x-should-retry` and `anthropic-ratelimit-*`
headers as the service sends them (anthropic.md section 5)."""

from __future__ import annotations

import datetime

import msgspec
from aiohttp import web

from workers.testing.responses import format_seconds, json_response
from workers.testing.scenario import Scenario

# status -> (error.type, message); `{model}` is the requested base model. Messages are the
# service's where public issue reports quote them.
_BODIES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "max_tokens: Field required"),
    401: ("authentication_error", "invalid x-api-key"),
    402: (
        "billing_error",
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
    ),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "model: {model}"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization "
        "(a1b2c3d4-0000-4000-8000-000000000000) of 50,000 input tokens per minute. For details, "
        "refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers "
        "for current usage. Please reduce the prompt length or the maximum tokens requested, or "
        "try again later. You may also contact sales at https://www.anthropic.com/contact-sales "
        "to discuss your options for a rate limit increase.",
    ),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
_KIND_BODIES: dict[str, tuple[str, str]] = {
    "context_window": (
        "invalid_request_error",
        "prompt is too long: 208310 tokens > 200000 maximum",
    ),
    "content_filter": ("invalid_request_error", "Output blocked by content filtering policy"),
}
# Statuses the SDK is told it may retry (it honours `x-should-retry`).
_RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
_RATE_LIMIT = 50000
# The in-stream error the fake sends, byte for byte as the service does (note the spaces).
STREAM_ERROR = b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'


class _Error(msgspec.Struct):
    type: str
    message: str


class _ErrorBody(msgspec.Struct):
    type: str
    error: _Error
    request_id: str


def request_id(number: int) -> str:
    return f"req_011C{number:020d}"


def error_response(
    status: int,
    error_type: str,
    message: str,
    *,
    request: str,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = _ErrorBody(
        type="error", error=_Error(type=error_type, message=message), request_id=request
    )
    all_headers = {"request-id": request, **(headers or {})}
    return json_response(msgspec.json.encode(body), status, all_headers)


def invalid_request(message: str, *, request: str) -> web.Response:
    return error_response(400, "invalid_request_error", message, request=request)


def authentication_error(message: str, *, request: str) -> web.Response:
    return error_response(401, "authentication_error", message, request=request)


def scripted_failure(scenario: Scenario, *, request: str) -> web.Response:
    """The error the scenario asks for, as Anthropic words it."""
    status = scenario.status or 500
    error_type, message = _body_for(status, scenario)
    headers: dict[str, str] = {}
    if status in _RETRYABLE:
        headers["x-should-retry"] = "true"
    if scenario.retry_after_s is not None:
        headers["retry-after"] = format_seconds(scenario.retry_after_s)
    if status == 429:
        headers.update(_rate_limit_headers(scenario.retry_after_s or 12))
    return error_response(
        status, error_type, message.format(model=scenario.base), request=request, headers=headers
    )


def _body_for(status: int, scenario: Scenario) -> tuple[str, str]:
    if scenario.error_kind is not None:
        return _KIND_BODIES[scenario.error_kind]
    if status in _BODIES:
        return _BODIES[status]
    if status >= 500:
        return _BODIES[500]
    return ("invalid_request_error", f"Request failed with status {status}.")


def _rate_limit_headers(reset_in_s: float) -> dict[str, str]:
    reset = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=reset_in_s)
    stamp = reset.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    limit = str(_RATE_LIMIT)
    return {
        "anthropic-ratelimit-requests-limit": "4000",
        "anthropic-ratelimit-requests-remaining": "3999",
        "anthropic-ratelimit-requests-reset": stamp,
        "anthropic-ratelimit-input-tokens-limit": limit,
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": stamp,
        "anthropic-ratelimit-output-tokens-limit": "10000",
        "anthropic-ratelimit-output-tokens-remaining": "10000",
        "anthropic-ratelimit-output-tokens-reset": stamp,
        "anthropic-ratelimit-tokens-limit": limit,
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": stamp,
    }
