"""Bedrock's failures as the fake sends them, and the Bedrock-only scenario directives.

HTTP errors are rest-json: the type in `x-amzn-ErrorType` (`ThrottlingException:http://...`)
and a `{"message": ...}` body. Mid-stream failures are `:message-type exception` frames.
Besides the shared grammar (`scenario`), a Bedrock model name may carry:

    error=<ExceptionName>       fail with that exception (and its status, unless status= is
                                given), e.g. error=ModelNotReadyException
    exception=<streamException> the exception frame stream_error_after=<n> sends (default
                                internalServerException), e.g. exception=throttlingException
    stop_reason=<stopReason>    end with that stopReason, e.g. stop_reason=guardrail_intervened

They are taken out before the rest is parsed by `parse_scenario`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection
from typing import Any, NamedTuple

import msgspec
from aiohttp import web

from workers.testing.responses import format_seconds, json_response
from workers.testing.scenario import (
    DIRECTIVE_SEPARATOR,
    Scenario,
    ScenarioError,
    parse_scenario,
)

ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"
AUTH_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.coral.service/"
STOP_REASONS = (
    "end_turn",
    "tool_use",
    "max_tokens",
    "stop_sequence",
    "guardrail_intervened",
    "content_filtered",
    "malformed_model_output",
    "malformed_tool_use",
    "model_context_window_exceeded",
)
_UNEXPECTED = (
    "The system encountered an unexpected error during processing. Try your request again."
)
_INVALID_TOKEN = "The security token included in the request is invalid."
# exception -> (status, message). Messages of the examples where we have them; others are
# Bedrock's usual wording (Unconfirmed word for word).
EXCEPTIONS: dict[str, tuple[int, str]] = {
    "ValidationException": (
        400,
        "Malformed input request, please reformat your input and try again.",
    ),
    "ServiceQuotaExceededException": (
        400,
        "Your request exceeds the service quota for your account. You can view your quotas "
        "at https://console.aws.amazon.com/servicequotas/.",
    ),
    "AccessDeniedException": (
        403,
        "You don't have access to the model with the specified model ID.",
    ),
    "ResourceNotFoundException": (
        404,
        "Could not resolve the foundation model from the provided model identifier.",
    ),
    "ModelTimeoutException": (
        408,
        "Model has timed out in processing the request. Try your request again.",
    ),
    "ModelErrorException": (
        424,
        "The model returned an error: the model failed to process the request.",
    ),
    "ThrottlingException": (429, "Too many requests, please wait before trying again."),
    "ModelNotReadyException": (
        429,
        "Model is not ready for inference. Wait and try your request again.",
    ),
    "InternalServerException": (500, _UNEXPECTED),
    "ServiceUnavailableException": (503, "Bedrock is unable to process your request."),
    "UnrecognizedClientException": (403, _INVALID_TOKEN),
    "ExpiredTokenException": (403, "The security token included in the request is expired"),
}
_BY_STATUS = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_MODEL_SAID = "The model returned the following errors: "
_KIND_MESSAGES = {
    "context_window": _MODEL_SAID + "Input is too long for requested model.",
    "content_filter": _MODEL_SAID + "Output blocked by content filtering policy",
}
STREAM_EXCEPTIONS: dict[str, str] = {
    "internalServerException": _UNEXPECTED,
    "modelStreamErrorException": "The model encountered an error while streaming its response.",
    "throttlingException": "Too many tokens, please wait before trying again.",
    "validationException": "Input is too long for requested model.",
    "serviceUnavailableException": "Bedrock is unable to process your request.",
}


class BedrockScenario(NamedTuple):
    scenario: Scenario
    error_type: str | None = None
    exception_type: str = "internalServerException"
    stop_reason: str | None = None


@functools.lru_cache(maxsize=4096)
def parse_bedrock_scenario(name: str) -> BedrockScenario:
    """The shared scenario plus the Bedrock-only directives (module docstring)."""
    base, *directives = name.split(DIRECTIVE_SEPARATOR)
    shared = [base]
    local: dict[str, str] = {}
    for directive in directives:
        key, _, value = directive.partition("=")
        if key in ("error", "exception", "stop_reason"):
            local[key] = _checked(name, key, value)
        else:
            shared.append(directive)
    error_type = local.get("error")
    if error_type and not any(d.startswith("status=") for d in directives):
        shared.append(f"status={EXCEPTIONS[error_type][0]}")
    if "exception" in local and not any(d.startswith("stream_error_after=") for d in directives):
        raise ScenarioError(f"model {name!r}: exception= needs stream_error_after=<n>")
    return BedrockScenario(
        scenario=parse_scenario(DIRECTIVE_SEPARATOR.join(shared)),
        error_type=error_type,
        exception_type=local.get("exception", "internalServerException"),
        stop_reason=local.get("stop_reason"),
    )


def _checked(name: str, key: str, value: str) -> str:
    known: Collection[str] = {
        "error": EXCEPTIONS.keys(),
        "exception": STREAM_EXCEPTIONS.keys(),
        "stop_reason": STOP_REASONS,
    }[key]
    if value not in known:
        raise ScenarioError(f"model {name!r}: {key}={value!r} is not one of {', '.join(known)}")
    return value


def request_id() -> str:
    return str(uuid.uuid4())


def error_response(
    status: int,
    error_type: str,
    message: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    suffix = AUTH_TYPE_SUFFIX if error_type in _AUTH_TYPES else ERROR_TYPE_SUFFIX
    all_headers = {"x-amzn-RequestId": request_id(), "x-amzn-ErrorType": error_type + suffix}
    all_headers.update(headers or {})
    body = msgspec.json.encode({"message": message, **(extra or {})})
    return json_response(body, status, all_headers)


_AUTH_TYPES = frozenset(
    {
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
    }
)


def validation_error(message: str) -> web.Response:
    return error_response(400, "ValidationException", message)


def scenario_failure(bedrock: BedrockScenario) -> web.Response:
    """The HTTP error a failing scenario asks for, as Bedrock words it."""
    scenario = bedrock.scenario
    status = scenario.status or 500
    error_type = (
        bedrock.error_type
        or _BY_STATUS.get(status)
        or ("InternalServerException" if status >= 500 else "ValidationException")
    )
    message = EXCEPTIONS[error_type][1]
    if scenario.error_kind is not None:
        message = _KIND_MESSAGES[scenario.error_kind]
    headers = {}
    if scenario.retry_after_s is not None:
        # Bedrock promises no Retry-After; the fake sends one only when a test asks for it.
        headers["Retry-After"] = format_seconds(scenario.retry_after_s)
    extra = {"originalStatusCode": 500, "resourceName": scenario.base}
    return error_response(
        status,
        error_type,
        message,
        extra=extra if error_type == "ModelErrorException" else None,
        headers=headers,
    )


def stream_exception_payload(exception_type: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"message": STREAM_EXCEPTIONS[exception_type]}
    if exception_type == "modelStreamErrorException":
        payload.update(originalStatusCode=500, originalMessage="Internal server error")
    return payload
