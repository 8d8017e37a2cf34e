"""Reliability policies in LiteLLM's terms: how often an error class is retried, how many of
its failures a deployment may have per minute before it cools down, and which model groups
a request falls back to after its own group gave up."""

from __future__ import annotations

from workers.errors import (
    APIConnectionError,
    AuthenticationFailed,
    ContentPolicyViolation,
    ContextWindowExceeded,
    GatewayTimeout,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    ProviderError,
    RateLimited,
    RequestTimeout,
    ServiceUnavailable,
    SwitchboardError,
)
from workers.retry import backoff_s
from workers.settings import FallbackRules, RouterSettings

# Errors that say nothing about the deployment's health (the request itself is at fault)
# count towards cooldown only when allowed_fails_policy names their class.
_CLIENT_FAULTS = (InvalidRequest,)


def error_class(exc: SwitchboardError) -> str:
    """LiteLLM's exception name for an error (the stem of retry/allowed-fails policy keys)."""
    if isinstance(exc, ContentPolicyViolation):
        return "ContentPolicyViolationError"
    if isinstance(exc, ContextWindowExceeded):
        return "ContextWindowExceededError"
    if isinstance(exc, InvalidRequest):
        return "BadRequestError"
    if isinstance(exc, AuthenticationFailed):
        return "AuthenticationError"
    if isinstance(exc, PermissionDenied):
        return "PermissionDeniedError"
    if isinstance(exc, NotFound):
        return "NotFoundError"
    if isinstance(exc, RequestTimeout | GatewayTimeout):
        return "TimeoutError"
    if isinstance(exc, RateLimited):
        return "RateLimitError"
    if isinstance(exc, ServiceUnavailable):
        return "ServiceUnavailableError"
    if isinstance(exc, APIConnectionError):
        return "APIConnectionError"
    if isinstance(exc, ProviderError) and exc.http_status == 502:
        return "BadGatewayError"
    return "InternalServerError"


# Where a class without a policy key of its own looks (LiteLLM has no such keys for them).
_POLICY_ALIASES = {
    "ContextWindowExceededError": "BadRequestError",
    "PermissionDeniedError": "AuthenticationError",
    "APIConnectionError": "InternalServerError",
    "BadGatewayError": "InternalServerError",
}


def retries_for(exc: SwitchboardError, settings: RouterSettings, num_retries: int) -> int:
    """How many times this error may be retried: retry_policy for its class, else
    num_retries for retryable errors and none for the rest."""
    policy = settings.retry_policy
    if policy is not None:
        name = error_class(exc)
        for key in (name, _POLICY_ALIASES.get(name)):
            value = getattr(policy, f"{key}Retries", None) if key else None
            if value is not None:
                return int(value)
        if exc.retryable and policy.DefaultRetries is not None:
            return policy.DefaultRetries
    return num_retries if exc.retryable else 0


def allowed_fails_for(exc: SwitchboardError, settings: RouterSettings) -> int | None:
    """Failures of this class a deployment may have per minute; None: it does not count."""
    policy = settings.allowed_fails_policy
    if policy is not None:
        name = error_class(exc)
        if name == "BadGatewayError":
            value = policy.BadGatewayErrorAllowedFails
        else:
            key = name if hasattr(policy, f"{name}AllowedFails") else _POLICY_ALIASES.get(name)
            value = getattr(policy, f"{key}AllowedFails", None) if key else None
        if value is not None:
            return int(value)
    if isinstance(exc, _CLIENT_FAULTS):
        return None
    return settings.allowed_fails


def retry_delay_s(
    exc: SwitchboardError, retry: int, settings: RouterSettings, *, has_alternative: bool
) -> float:
    """Pause before retry number `retry` (1-based). Another healthy deployment is tried at
    once (the Retry-After concerns the one that failed); else the provider's Retry-After,
    else exponential backoff with jitter, never under router_settings.retry_after."""
    if has_alternative:
        return settings.retry_after
    return max(settings.retry_after, backoff_s(retry - 1, exc.retry_after_s))


def fallback_groups(group: str, exc: SwitchboardError, settings: RouterSettings) -> list[str]:
    """Model groups to try, in order, after `group` failed with `exc` (at most max_fallbacks)."""
    chain: list[str] = []
    if isinstance(exc, ContextWindowExceeded):
        chain = rule_targets(settings.context_window_fallbacks, group)
    elif isinstance(exc, ContentPolicyViolation):
        chain = rule_targets(settings.content_policy_fallbacks, group)
    elif isinstance(exc, InvalidRequest):
        return []  # the same request fails the same way elsewhere
    return _tried(chain or _general_chain(group, settings), group, settings)


def every_fallback_group(group: str, settings: RouterSettings) -> list[str]:
    """Every model group `fallback_groups` may send `group` to, whatever the failure: what a
    front door checks a request against before the worker knows which one it will reach."""
    chains = (
        _general_chain(group, settings),
        rule_targets(settings.context_window_fallbacks, group),
        rule_targets(settings.content_policy_fallbacks, group),
    )
    found: list[str] = []
    for chain in chains:
        found += [name for name in _tried(chain, group, settings) if name not in found]
    return found


def _general_chain(group: str, settings: RouterSettings) -> list[str]:
    """The fallbacks for any failure: `group`'s rule, else default_fallbacks."""
    return rule_targets(settings.fallbacks, group) or list(settings.default_fallbacks or [])


def _tried(chain: list[str], group: str, settings: RouterSettings) -> list[str]:
    """The groups of `chain` that are tried: each once, never `group` itself, at most
    max_fallbacks."""
    unique = [name for i, name in enumerate(chain) if name != group and name not in chain[:i]]
    return unique[: settings.max_fallbacks]


def rule_targets(rules: FallbackRules | None, group: str) -> list[str]:
    """The groups `rules` send `group` to: its own rule's, else the `*` rule's."""
    wildcard: list[str] = []
    for rule in rules or []:
        if group in rule:
            return list(rule[group])
        if "*" in rule and not wildcard:
            wildcard = list(rule["*"])
    return wildcard
