"""The policy for OpenAI parameters a provider cannot honor: a clear 400 naming the parameter
and the provider, or, when the caller opted in with `drop_params`, dropped and logged.
Never dropped silently."""

from __future__ import annotations

import logging

import msgspec

from workers.errors import InvalidRequest, UnsupportedParams

log = logging.getLogger("switchboard.params")

# Fields the gateway itself consumes; they never reach a provider.
GATEWAY_FIELDS: frozenset[str] = frozenset(
    {
        "timeout",
        "num_retries",
        "drop_params",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "priority",
        # The response cache's per-request controls (issue #19): the front door's business.
        "cache",
        # The guardrails a request names (issue #19): the front door's business too.
        "guardrails",
    }
)


# LiteLLM request fields LiteLLM consumes itself rather than send upstream (issue #16): kept
# on the request (logs, routing tags, spend) and removed from the body every OpenAI-family
# adapter forwards. `metadata` is LiteLLM's request metadata (user ids, tags, trace names),
# not OpenAI's stored-completion tags; an adapter whose API takes it as the same thing reads
# it from the request (Bedrock's requestMetadata, Anthropic's metadata.user_id).
CONSUMED_FIELDS: frozenset[str] = frozenset(
    {
        "metadata",
        "litellm_metadata",
        "tags",
        "mock_response",
        "mock_timeout",
        "mock_testing_fallbacks",
        "caching",
        "cache",
        "no-log",
        "guardrails",
        "context_window_fallback_dict",
        "model_list",
        "input_cost_per_token",
        "output_cost_per_token",
    }
)


def unsupported(
    param: str, provider: str, reason: str = "", *, drop_params: bool, model: str | None = None
) -> None:
    """Refuse `param`, or (with drop_params) log that it is dropped. The caller drops it.

    Adapters reach this through `Adapter.refuser` (workers/providers/base.py)."""
    detail = f": {reason}" if reason else ""
    if not drop_params:
        raise UnsupportedParams(
            f"{provider} does not support parameter `{param}`{detail}. "
            "Remove it, or pass drop_params=True to drop unsupported parameters.",
            param=param,
            provider=provider,
            model=model,
        )
    log.debug("dropping parameter %s unsupported by %s%s", param, provider, detail)


class GatewayOptions(msgspec.Struct, kw_only=True):
    """Gateway fields a client may put in a request body (as LiteLLM's proxy accepts them).

    `fallbacks`, `context_window_fallbacks` and `content_policy_fallbacks` are not among
    them: only the operator's config decides where a request falls back (issue #13, item 4),
    so a body's fallbacks are removed with the other gateway fields and never followed."""

    timeout: float | None = None
    num_retries: int | None = None
    drop_params: bool | None = None
    priority: int | None = None
    tags: list[str] | None = None


decode_gateway_options = msgspec.json.Decoder(GatewayOptions).decode

# Hard bounds: past them an option is an error, not a wish to clamp (issue #13, item 5).
# Within them, the operator's limits still win (`capped`).
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_NUM_RETRIES = 100
PRIORITY_MIN, PRIORITY_MAX = -(2**31), 2**31 - 1


def validate_gateway_options(options: GatewayOptions) -> None:
    """A 400 naming the option for a value no operator could mean to allow."""
    timeout, retries, priority = options.timeout, options.num_retries, options.priority
    if timeout is not None and not 0 < timeout <= MAX_TIMEOUT_S:
        raise InvalidRequest(
            f"`timeout` must be a positive number of seconds, at most {MAX_TIMEOUT_S:g}; "
            f"got {timeout:g}",
            param="timeout",
            code="invalid_value",
        )
    if retries is not None and not 0 <= retries <= MAX_NUM_RETRIES:
        raise InvalidRequest(
            f"`num_retries` must be between 0 and {MAX_NUM_RETRIES}; got {_shown(retries)}",
            param="num_retries",
            code="invalid_value",
        )
    if priority is not None and not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidRequest(
            f"`priority` must be a 32-bit integer; got {_shown(priority)}",
            param="priority",
            code="invalid_value",
        )


def _shown(number: int) -> str:
    # str() refuses integers past 4,300 digits (and an error message has no use for them).
    return str(number) if -(10**20) < number < 10**20 else "a number out of range"


def capped(options: GatewayOptions, *, timeout_s: float, num_retries: int) -> GatewayOptions:
    """The options with the operator's limits applied: a client may shorten its deadline and
    ask for fewer retries, never lengthen or add past what the config allows."""
    timeout = options.timeout
    retries = options.num_retries
    return msgspec.structs.replace(
        options,
        timeout=None if timeout is None else min(timeout, timeout_s),
        num_retries=None if retries is None else min(retries, num_retries),
    )
