"""The policy for OpenAI parameters a provider cannot honor: a clear 400 naming the parameter
and the provider, or, when the caller opted in with `drop_params`, dropped and logged.
Never dropped silently."""

from __future__ import annotations

import logging

import msgspec

from workers.errors import UnsupportedParams

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
    """Gateway fields a client may put in a request body (as LiteLLM's proxy accepts them)."""

    timeout: float | None = None
    num_retries: int | None = None
    drop_params: bool | None = None
    priority: int | None = None


decode_gateway_options = msgspec.json.Decoder(GatewayOptions).decode
