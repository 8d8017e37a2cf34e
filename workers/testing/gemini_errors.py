"""Gemini's error responses: the google.rpc.Status envelope, pretty-printed as the service
sends it, per HTTP status (429 with QuotaFailure, Help and RetryInfo details)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from workers.testing.responses import format_seconds
from workers.testing.scenario import Scenario

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"
DEFAULT_RETRY_DELAY_S = 17.0
_RPC_TYPE = "type.googleapis.com/google.rpc."
# HTTP status -> (google.rpc status, message); `{model}` is the requested base model.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
        "cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: (
        "NOT_FOUND",
        "models/{model} is not found for API version v1beta, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their "
        "supported methods.",
    ),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
# Canonical google.rpc codes for the other statuses a scenario may ask for.
_RPC_STATUS = {409: "ABORTED", 499: "CANCELLED", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE"}
CONTEXT_WINDOW_MESSAGE = (
    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
)
NO_KEY_MESSAGE = (
    "Method doesn't allow unregistered callers (callers without established identity). Please "
    "use API Key or other form of API consumer identity to call this API."
)
BAD_KEY_MESSAGE = "API key not valid. Please pass a valid API key."


def pretty(payload: Any) -> bytes:
    """JSON as the service prints it: two-space indent, a final newline."""
    return orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def status_body(code: int, message: str, status: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return pretty({"error": error})


def error_response(
    code: int,
    message: str,
    status: str,
    details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    all_headers = {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})}
    return web.Response(
        body=status_body(code, message, status, details), status=code, headers=all_headers
    )


def invalid_argument(message: str) -> web.Response:
    return error_response(400, message, "INVALID_ARGUMENT")


def missing_key() -> web.Response:
    return error_response(403, NO_KEY_MESSAGE, "PERMISSION_DENIED")


def invalid_key() -> web.Response:
    return error_response(
        400, BAD_KEY_MESSAGE, "INVALID_ARGUMENT", [_error_info("API_KEY_INVALID")]
    )


def not_found(message: str) -> web.Response:
    return error_response(404, message, "NOT_FOUND")


def scenario_failure(scenario: Scenario, method: str = "generateContent") -> web.Response:
    """The error the scenario asks for, as Gemini words it."""
    status = scenario.status or 500
    if scenario.error_kind == "context_window":
        return invalid_argument(CONTEXT_WINDOW_MESSAGE)
    rpc_status, message = _ERRORS.get(status, (_rpc_status(status), f"HTTP {status}"))
    message = message.format(model=scenario.base).replace("generateContent", method)
    details = _quota_details(scenario) if status == 429 else None
    return error_response(status, message, rpc_status, details)


def stream_error_event(scenario: Scenario) -> dict[str, Any]:
    """The `{"error": ...}` object that ends a stream failing after it started."""
    status = scenario.status if scenario.status and scenario.status >= 500 else 500
    rpc_status, message = _ERRORS.get(status, _ERRORS[500])
    return {"error": {"code": status, "message": message, "status": rpc_status}}


def _rpc_status(status: int) -> str:
    if status in _RPC_STATUS:
        return _RPC_STATUS[status]
    return "FAILED_PRECONDITION" if status < 500 else "UNKNOWN"


def _error_info(reason: str) -> dict[str, Any]:
    return {
        "@type": _RPC_TYPE + "ErrorInfo",
        "reason": reason,
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }


def _quota_details(scenario: Scenario) -> list[Any]:
    delay = scenario.retry_after_s if scenario.retry_after_s is not None else DEFAULT_RETRY_DELAY_S
    return [
        {
            "@type": _RPC_TYPE + "QuotaFailure",
            "violations": [
                {
                    "quotaMetric": "generativelanguage.googleapis.com/"
                    "generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "quotaDimensions": {"location": "global", "model": scenario.base},
                    "quotaValue": "10",
                }
            ],
        },
        {
            "@type": _RPC_TYPE + "Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
        {"@type": _RPC_TYPE + "RetryInfo", "retryDelay": format_seconds(delay) + "s"},
    ]
