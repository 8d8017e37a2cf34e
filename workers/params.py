"""The policy for OpenAI parameters a provider cannot honor: a clear 400 naming the parameter
and the provider, or, when the caller opted in with `drop_params`, dropped and logged.
Never dropped silently."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

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
    """Refuse `param`, or (with drop_params) log that it is dropped. The caller drops it."""
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


def drop_unsupported(
    body: MutableMapping[str, Any],
    refused: Mapping[str, str],
    provider: str,
    *,
    drop_params: bool,
    model: str | None = None,
) -> list[str]:
    """Remove (or refuse) every parameter of `body` listed in `refused` (param -> reason).

    A parameter whose value is None counts as not set."""
    dropped: list[str] = []
    for param, reason in refused.items():
        if body.get(param) is None:
            continue
        unsupported(param, provider, reason, drop_params=drop_params, model=model)
        del body[param]
        dropped.append(param)
    return dropped


def refuse_unknown(
    names: Iterable[str],
    provider: str,
    *,
    drop_params: bool,
    model: str | None = None,
) -> list[str]:
    """For native adapters: top-level fields outside the OpenAI schema they cannot forward."""
    dropped = []
    for name in names:
        unsupported(
            name,
            provider,
            "not an OpenAI parameter it can translate",
            drop_params=drop_params,
            model=model,
        )
        dropped.append(name)
    return dropped


class GatewayOptions(msgspec.Struct, kw_only=True):
    """Gateway fields a client may put in a request body (as LiteLLM's proxy accepts them)."""

    timeout: float | None = None
    num_retries: int | None = None
    drop_params: bool | None = None
    priority: int | None = None


decode_gateway_options = msgspec.json.Decoder(GatewayOptions).decode
