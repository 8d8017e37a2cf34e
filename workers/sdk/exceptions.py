"""The SDK's exceptions under LiteLLM's names (issue #16): `except switchboard.RateLimitError`
works where `except litellm.RateLimitError` did. They are the classes of the one error tree
(workers/errors.py), not copies, so the gateway and the SDK raise the same thing; each
carries `status_code`, `message`, `llm_provider` and `model`, as LiteLLM's do.
"""

from workers.errors import (
    APIConnectionError,
    AuthenticationFailed,
    ContentPolicyViolation,
    ContextWindowExceeded,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderError,
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    SwitchboardError,
    TimedOut,
    UnprocessableEntity,
)

APIError = SwitchboardError
AuthenticationError = AuthenticationFailed
PermissionDeniedError = PermissionDenied
NotFoundError = NotFound
BadRequestError = InvalidRequest
UnprocessableEntityError = UnprocessableEntity
RateLimitError = RateLimited
ContextWindowExceededError = ContextWindowExceeded
ContentPolicyViolationError = ContentPolicyViolation
Timeout = TimedOut
ServiceUnavailableError = ServiceUnavailable
# A provider's 5xx or unreadable answer (LiteLLM's InternalServerError); the gateway's own
# faults are workers.errors.InternalError, under APIError.
InternalServerError = ProviderError
# Budgets and quotas exhausted: a 429 that waiting will not cure.
BudgetExceededError = QuotaExceeded

__all__ = [
    "APIConnectionError",
    "APIError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "Timeout",
    "UnprocessableEntityError",
]
