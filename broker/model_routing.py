"""How each model group is routed, as /model/info shows it beside the deployments (issue
#21's Models page): the router's strategy and its arguments, retries, timeouts, cooldown,
and the group's own fallbacks as the worker resolves them (its rule, else the `*` rule,
else default_fallbacks). Nothing secret: router_settings' Redis fields are never shown."""

from __future__ import annotations

from typing import Any

import msgspec

from broker.config.loader import Config
from workers.routing.reliability import rule_targets
from workers.settings import RouterSettings


def describe_routing(config: Config, groups: list[str]) -> list[dict[str, Any]]:
    """One entry per group in `groups` (in that order): its routing and its settings."""
    settings = config.router_settings
    shared = _shared(settings)
    return [{"model_group": group, **shared, **_fallbacks(settings, group)} for group in groups]


def _shared(settings: RouterSettings) -> dict[str, Any]:
    """What every group shares: LiteLLM's router settings are the router's, not a group's."""
    policy = settings.retry_policy
    return {
        "routing_strategy": settings.routing_strategy,
        "routing_strategy_args": msgspec.to_builtins(settings.routing_strategy_args),
        "num_retries": settings.num_retries or 0,
        "retry_policy": _set_fields(policy),
        "timeout": settings.timeout,
        "stream_timeout": settings.stream_timeout,
        # None: a deployment never cools down.
        "allowed_fails": None if settings.disable_cooldowns else settings.allowed_fails,
        "cooldown_time": None if settings.disable_cooldowns else settings.cooldown_time,
        "enable_pre_call_checks": settings.enable_pre_call_checks,
        "enable_tag_filtering": settings.enable_tag_filtering,
    }


def _fallbacks(settings: RouterSettings, group: str) -> dict[str, Any]:
    general = rule_targets(settings.fallbacks, group) or list(settings.default_fallbacks or [])
    return {
        "fallbacks": _without(general, group)[: settings.max_fallbacks],
        "context_window_fallbacks": _without(
            rule_targets(settings.context_window_fallbacks, group), group
        ),
        "content_policy_fallbacks": _without(
            rule_targets(settings.content_policy_fallbacks, group), group
        ),
    }


def _without(chain: list[str], group: str) -> list[str]:
    return [name for i, name in enumerate(chain) if name != group and name not in chain[:i]]


def _set_fields(policy: msgspec.Struct | None) -> dict[str, Any]:
    if policy is None:
        return {}
    return {k: v for k, v in msgspec.to_builtins(policy).items() if v is not None}
