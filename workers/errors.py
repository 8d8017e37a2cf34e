"""The error tree every part raises; `broker/errors.py` maps it to HTTP once.

    SwitchboardError                      500 api_error
    ├── InvalidRequest                    400 invalid_request_error
    │   ├── ContextWindowExceeded         400   code context_length_exceeded
    │   ├── ContentPolicyViolation        400   code content_policy_violation
    │   ├── UnsupportedParams             400   code unsupported_parameter
    │   ├── UnprocessableEntity           422   the provider's 422
    │   └── RequestTooLarge               413   code request_too_large
    ├── AuthenticationFailed              401 authentication_error
    ├── PermissionDenied                  403 permission_error
    ├── NotFound                          404 not_found_error
    │   └── ModelNotFound                 404   code model_not_found
    ├── TimedOut                          408 timeout_error          (retryable)
    │   ├── RequestTimeout                408   an upstream attempt timed out
    │   └── GatewayTimeout                504   the request's own deadline passed
    ├── RateLimited                       429 rate_limit_error       (retryable, retry_after_s)
    │   └── QuotaExceeded                 429   code insufficient_quota (not retryable; also 402)
    ├── BudgetExceeded                    422 budget_exceeded        (LiteLLM's; not retryable)
    ├── ServiceUnavailable                503 service_unavailable    (retryable)
    ├── ProviderError                     500/502 api_error          (retryable)
    │   ├── APIConnectionError            502   code connection_error
    │   └── UpstreamResponseTooLarge      502   code upstream_response_too_large (not retryable)
    ├── InternalError                     500 internal_error
    └── RequestCancelled                  499 cancelled              (its client went away)

The HTTP status decides which exception the official openai client raises (BadRequestError,
RateLimitError, ...), so each class's status is chosen to make that client behave: 4xx other
than 408/429 are final, 408/429/5xx are retried by clients.

`to_json()` is the one rendering of an error's body, whichever way it travels: an HTTP
response (broker/errors.py), an SSE event (broker/sse_frames.py) or a reply record
(`workers.envelopes.error_record`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from workers.wire import ErrorBody, ErrorDetail, encode

if TYPE_CHECKING:
    from workers.deployment import Deployment
    from workers.routing.attempts import Outcome


class SwitchboardError(Exception):
    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False
    # Set by routing (workers/routing/attempts.py): the deployment whose attempt raised this
    # error, and where the request had got to when it failed (attempts, fallbacks, last
    # deployment). The worker reports both with the error (upstream_text.py, the Meta).
    deployment: Deployment | None = None
    outcome: Outcome | None = None
    # Response headers the error carries besides Retry-After (x-ratelimit-* on a 429).
    headers: dict[str, str] | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        upstream_status: int | None = None,
        retry_after_s: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.provider = provider
        self.model = model
        self.upstream_status = upstream_status
        self.retry_after_s = retry_after_s
        # A few classes cover a range (ProviderError keeps the upstream's 5xx).
        self.http_status = status if status is not None else self.status

    # LiteLLM's attribute names (its exceptions carry both), so handlers written for
    # `litellm.RateLimitError` read the same fields here (issue #16).
    @property
    def status_code(self) -> int:
        return self.http_status

    @property
    def llm_provider(self) -> str | None:
        return self.provider

    def to_body(self) -> ErrorBody:
        return ErrorBody(
            error=ErrorDetail(
                message=self.message, type=self.error_type, param=self.param, code=self.code
            )
        )

    def to_json(self) -> bytes:
        """The body as JSON bytes. A message quoting what a client sent (a header, a path)
        may hold text that is not UTF-8 (aiohttp keeps it as surrogates): it is sent with
        those characters escaped rather than failing to encode."""
        body = self.to_body()
        try:
            return encode(body)
        except UnicodeEncodeError:
            detail = body.error
            detail.message = _escaped(detail.message)
            detail.param = None if detail.param is None else _escaped(detail.param)
            return encode(body)

    def context(self) -> dict[str, Any]:
        """Fields for logs and metrics; never holds a secret."""
        return {
            "error": type(self).__name__,
            "status": self.http_status,
            "provider": self.provider,
            "model": self.model,
            "upstream_status": self.upstream_status,
        }

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (worker -> Redis -> front door) as their body,
        # but pickling must still work for multiprocessing and test helpers.
        return (_rebuild, (type(self), self.message, self.__dict__))


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode()


def _rebuild(cls: type[SwitchboardError], message: str, state: dict[str, Any]) -> SwitchboardError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class InvalidRequest(SwitchboardError):
    status = 400
    error_type = "invalid_request_error"


class ContextWindowExceeded(InvalidRequest):
    default_code = "context_length_exceeded"


class ContentPolicyViolation(InvalidRequest):
    default_code = "content_policy_violation"


class UnsupportedParams(InvalidRequest):
    default_code = "unsupported_parameter"


class UnprocessableEntity(InvalidRequest):
    """The provider understood the request but refused its content (its HTTP 422)."""

    status = 422


class RequestTooLarge(InvalidRequest):
    status = 413
    default_code = "request_too_large"


class AuthenticationFailed(SwitchboardError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(SwitchboardError):
    status = 403
    error_type = "permission_error"


class NotFound(SwitchboardError):
    status = 404
    error_type = "not_found_error"


class ModelNotFound(NotFound):
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class TimedOut(SwitchboardError):
    """Either timeout: one `except` for both, as LiteLLM's `Timeout` is."""

    status = 408
    error_type = "timeout_error"
    default_code = "timeout"
    retryable = True


class RequestTimeout(TimedOut):
    pass


class GatewayTimeout(TimedOut):
    """The request's own deadline passed inside the gateway (queued too long)."""

    status = 504
    error_type = "timeout_error"
    default_code = "deadline_exceeded"
    retryable = True


class RateLimited(SwitchboardError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"
    retryable = True


class QuotaExceeded(RateLimited):
    """Billing quota or budget exhausted: a 429 that waiting will not cure."""

    default_code = "insufficient_quota"
    retryable = False


class BudgetExceeded(SwitchboardError):
    """A budget ran out (issue #17): LiteLLM's `budget_exceeded`, 422 as LiteLLM answers by
    default; waiting helps only once the budget resets, which the message says."""

    status = 422
    error_type = "budget_exceeded"
    default_code = "budget_exceeded"


class ServiceUnavailable(SwitchboardError):
    status = 503
    error_type = "service_unavailable_error"
    default_code = "service_unavailable"
    retryable = True


class ProviderError(SwitchboardError):
    """The provider failed (5xx) or answered with something we could not read."""

    status = 502
    error_type = "api_error"
    default_code = "provider_error"
    retryable = True


class APIConnectionError(ProviderError):
    default_code = "connection_error"


class UpstreamResponseTooLarge(ProviderError):
    """The provider's reply passed `switchboard_settings.max_reply_bytes`. Not retried: the
    same request would fetch the same reply again (a fallback group may still answer)."""

    default_code = "upstream_response_too_large"
    retryable = False


class InternalError(SwitchboardError):
    error_type = "internal_error"
    default_code = "internal_error"


class RequestCancelled(SwitchboardError):
    """The client went away and the request was cancelled. Nobody is left to read a status;
    a client that resumes the stream reads this as the stream's last event."""

    status = 499  # nginx's "client closed request"
    error_type = "cancelled"
    default_code = "cancelled"

    def __init__(
        self, message: str = "the request was cancelled after its client disconnected"
    ) -> None:
        super().__init__(message)


# How providers say a prompt does not fit (lowercased). OpenAI-family hosts mostly send the
# code `context_length_exceeded`; the rest only say it in words.
_CONTEXT_WINDOW_HINTS = (
    "context_length_exceeded",
    "maximum context",  # OpenAI, vLLM, DeepSeek, OpenRouter, Mistral: "maximum context length"
    "maximum prompt length",  # xAI
    "context window",
    "context length",
    "exceed context limit",  # Anthropic: "input length and `max_tokens` exceed context limit"
    "prompt is too long",  # Anthropic
    "exceeds the maximum number of tokens",  # Gemini: "The input token count (n) exceeds ..."
    "input token count",  # Gemini
    "too many tokens",
    "too many input tokens",  # Bedrock
    "input is too long",  # Bedrock ValidationException
    "exceeds the context",
)
_CONTENT_POLICY_CODES = frozenset(
    {"content_filter", "content_policy_violation", "responsibleaipolicyviolation"}
)


def says_context_window_exceeded(message: str, code: str | None = None) -> bool:
    """Whether an upstream error says the prompt is longer than the model's context window."""
    if (code or "").lower() == "context_length_exceeded":
        return True
    lowered = message.lower()
    return any(hint in lowered for hint in _CONTEXT_WINDOW_HINTS)


def _bad_request(
    status: int, message: str, code: str | None, kwargs: dict[str, Any]
) -> SwitchboardError:
    if (code or "").lower() in _CONTENT_POLICY_CODES:
        return ContentPolicyViolation(message, **kwargs)
    if says_context_window_exceeded(message, code):
        return ContextWindowExceeded(message, **{**kwargs, "param": kwargs["param"] or "messages"})
    if status == 413:
        return RequestTooLarge(message, **kwargs)
    if status == 422:
        return UnprocessableEntity(message, code=code, **kwargs)
    return InvalidRequest(message, code=code, **kwargs)


def error_for_status(
    status: int,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    retry_after_s: float | None = None,
) -> SwitchboardError:
    """The most specific error for an upstream HTTP status and its error message/code.

    Adapters call this once, after reading the provider's own error body. A prompt too long
    for the model becomes ContextWindowExceeded whichever of 400/413/422 carried it: routing's
    context_window_fallbacks key on that class."""
    kwargs: dict[str, Any] = {
        "param": param,
        "provider": provider,
        "model": model,
        "upstream_status": status,
    }
    if status in (400, 413, 422):
        return _bad_request(status, message, code, kwargs)
    if status == 401:
        return AuthenticationFailed(message, **kwargs)
    if status == 402:
        # Payment required: out of credit, which no retry or wait will cure.
        return QuotaExceeded(message, **kwargs)
    if status == 403:
        return PermissionDenied(message, code=code, **kwargs)
    if status == 404:
        return NotFound(message, code=code or "not_found", **kwargs)
    if status == 408:
        return RequestTimeout(message, **kwargs)
    if status == 429:
        if (code or "").lower() == "insufficient_quota":
            return QuotaExceeded(message, **kwargs)
        return RateLimited(message, retry_after_s=retry_after_s, **kwargs)
    if status in (503, 529):
        return ServiceUnavailable(message, retry_after_s=retry_after_s, **kwargs)
    if status >= 500:
        return ProviderError(message, status=status if status in (500, 502) else 502, **kwargs)
    return InvalidRequest(
        message, code=code, status=status if 400 <= status < 500 else 400, **kwargs
    )
