"""OpenAI's error responses: the `{"error": {message, type, param, code}}` body per status,
with the headers the service sends alongside (Retry-After, x-ratelimit-* on 429)."""

from __future__ import annotations

from aiohttp import web

from workers import wire
from workers.testing.responses import format_seconds, go_duration, json_response
from workers.testing.scenario import Scenario

# status -> (message, type, param, code); `{model}` is the requested base model.
_BODIES: dict[int, tuple[str, str, str | None, str | None]] = {
    400: (
        "Invalid 'messages': empty array. Expected an array with minimum length 1, "
        "but got an empty array instead.",
        "invalid_request_error",
        "messages",
        "empty_array",
    ),
    401: (
        "Incorrect API key provided: sk-abc***xyz. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    ),
    403: (
        "Country, region, or territory not supported",
        "invalid_request_error",
        None,
        "unsupported_country_region_territory",
    ),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        None,
        "model_not_found",
    ),
    429: (
        "Rate limit reached for {model} in organization org-AbCdEf123456 on tokens per min "
        "(TPM): Limit 30000, Used 29880, Requested 512. Please try again in 784ms. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        "tokens",
        None,
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
        None,
    ),
    503: (
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
        None,
    ),
}
_KIND_BODIES: dict[str, tuple[str, str, str | None, str | None]] = {
    "context_window": (
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in 130412 tokens. Please reduce the length of the messages.",
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
    ),
    "content_filter": (
        "Your request was rejected as a result of our safety system. Your prompt may contain "
        "text that is not allowed by our safety system.",
        "invalid_request_error",
        "prompt",
        "content_filter",
    ),
}
_RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-tokens": "0",
}
_MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    "a username and password. You can obtain an API key from "
    "https://platform.openai.com/account/api-keys."
)


def error_response(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    detail = wire.ErrorDetail(message=message, type=type, param=param, code=code)
    return json_response(wire.encode(wire.ErrorBody(error=detail)), status, headers)


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None
) -> web.Response:
    """A 400 in OpenAI's shape; Azure answers request-validation errors the same way."""
    return error_response(400, message, param=param, code=code)


def openai_missing_key() -> web.Response:
    return error_response(401, _MISSING_KEY)


def openai_invalid_key(key: str) -> web.Response:
    message = (
        f"Incorrect API key provided: {key[:6]}***{key[-3:]}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    return error_response(401, message, code="invalid_api_key")


def openai_failure(scenario: Scenario, headers: dict[str, str]) -> web.Response:
    """The error the scenario asks for, as OpenAI words it."""
    status = scenario.status or 500
    message, type_, param, code = _body_for(status, scenario)
    if scenario.retry_after_s is not None:
        headers["retry-after"] = format_seconds(scenario.retry_after_s)
    if status == 429:
        headers.update(_RATE_LIMIT_HEADERS)
        headers["x-ratelimit-reset-tokens"] = go_duration(scenario.retry_after_s or 0.784)
    return error_response(
        status,
        message.format(model=scenario.base),
        type=type_,
        param=param,
        code=code,
        headers=headers,
    )


def _body_for(status: int, scenario: Scenario) -> tuple[str, str, str | None, str | None]:
    if scenario.error_kind is not None:
        return _KIND_BODIES[scenario.error_kind]
    if status in _BODIES:
        return _BODIES[status]
    if status >= 500:
        return _BODIES[500]
    return (f"Request failed with status {status}.", "invalid_request_error", None, None)
