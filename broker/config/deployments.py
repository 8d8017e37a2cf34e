"""From `model_list` entries to the `Deployment`s each model group load-balances over.

Also checks, once, the names routing refers to: deployment ids must be unique, and
fallbacks and aliases should name model groups that exist.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import msgspec

from broker.config.errors import ConfigError, from_validation_error
from broker.config.problems import Problems
from workers.deployment import Deployment, Secret
from workers.errors import ModelNotFound
from workers.providers import adapter_class, make_deployment
from workers.settings import (
    DEPLOYMENT_OPTION_KEYS,
    FallbackRules,
    LiteLLMSettings,
    ModelEntry,
    RouterSettings,
)
from workers.settings.models import ModelInfo
from workers.wire import ChatCompletionRequest, EmbeddingRequest

log = logging.getLogger("switchboard.config")

_CHAT_KEYS = frozenset(f.encode_name for f in msgspec.structs.fields(ChatCompletionRequest))
_EMBEDDING_KEYS = frozenset(f.encode_name for f in msgspec.structs.fields(EmbeddingRequest))


def check_default_params(params: dict[str, Any], path: str, env_refs: Mapping[str, str]) -> None:
    """Type-check default request parameters against the OpenAI schema (wire.py)."""
    chat = {k: v for k, v in params.items() if k in _CHAT_KEYS}
    embedding = {k: v for k, v in params.items() if k in _EMBEDDING_KEYS - _CHAT_KEYS}
    try:
        msgspec.convert({"model": "-", "messages": [], **chat}, ChatCompletionRequest)
        msgspec.convert({"model": "-", "input": "", **embedding}, EmbeddingRequest)
    except msgspec.ValidationError as exc:
        raise from_validation_error(exc, env_refs, prefix=path) from None


def build_deployments(
    entries: list[ModelEntry],
    litellm: LiteLLMSettings,
    router: RouterSettings,
    environ: Mapping[str, str],
    problems: Problems,
    indices: list[int] | None = None,
) -> dict[str, list[Deployment]]:
    """Model group name -> its deployments, in config order; a bad entry is recorded in
    `problems` and left out. `indices` are the entries' places in the file's model_list."""
    groups: dict[str, list[Deployment]] = {}
    seen_ids: dict[str, int] = {}
    for place, entry in zip(indices or range(len(entries)), entries, strict=True):
        path = f"model_list[{place}]"
        deployment_id = entry.model_info.id
        if deployment_id is not None:
            if deployment_id in seen_ids:
                first = f"model_list[{seen_ids[deployment_id]}].model_info.id"
                problems.error(ConfigError(f"{path}.model_info.id", f"the same id as {first}"))
                continue
            seen_ids[deployment_id] = place
        group = groups.setdefault(entry.model_name, [])
        name = deployment_id or f"{entry.model_name}[{len(group)}]"
        try:
            group.append(_deployment(entry, name, litellm, router, environ, path))
        except ConfigError as exc:
            problems.error(exc)
    return {name: group for name, group in groups.items() if group}


def _deployment(
    entry: ModelEntry,
    name: str,
    litellm: LiteLLMSettings,
    router: RouterSettings,
    environ: Mapping[str, str],
    path: str,
) -> Deployment:
    params, info = entry.litellm_params, entry.model_info
    options = {k: getattr(params, k) for k in DEPLOYMENT_OPTION_KEYS if getattr(params, k)}
    given: dict[str, Any] = {
        "api_base": params.api_base,
        "api_key": params.api_key,
        "api_version": params.api_version,
        "organization": params.organization,
        "timeout_s": _first(params.timeout, router.timeout),
        "stream_timeout_s": _first(params.stream_timeout, router.stream_timeout, router.timeout),
        "drop_params": _first(params.drop_params, litellm.drop_params),
        "extra_headers": params.extra_headers,
        "default_params": params.default_params,
        "options": options,
        "name": name,
        "base_model": info.base_model,
        "input_cost_per_token": _first(params.input_cost_per_token, info.input_cost_per_token),
        "output_cost_per_token": _first(params.output_cost_per_token, info.output_cost_per_token),
        "stream_continuation": params.stream_continuation,
        "mock_response": params.mock_response,
        "mock_timeout": params.mock_timeout,
    }
    model = _provider_model(params.model, params.custom_llm_provider)
    try:
        made = make_deployment(model, environ, **given)
    except ModelNotFound as exc:
        # The model string may itself come from the environment; then it stays unsaid.
        secret = isinstance(params.model, Secret) or isinstance(params.custom_llm_provider, Secret)
        detail = "no provider serves this model" if secret else exc.message
        raise ConfigError(f"{path}.litellm_params.model", detail) from None
    except ImportError as exc:
        detail = f"the provider's support could not be loaded ({exc})"
        raise ConfigError(f"{path}.litellm_params.model", detail) from None
    problem = adapter_class(made.provider).config_problem(made)
    if problem is not None:
        raise ConfigError(f"{path}.litellm_params.{problem[0]}", problem[1])
    return _with_batch_mode(made, info, path)


# Providers with a batch API Switchboard drives (broker/batches/native_*.py).
NATIVE_BATCH_PROVIDERS = frozenset({"openai", "anthropic"})


def _with_batch_mode(deployment: Deployment, info: ModelInfo, path: str) -> Deployment:
    """model_info.batch_mode (or LiteLLM's mode `batch`) applied: `native` only where the
    provider has a batch API."""
    mode = info.batch_mode
    if mode is None and info.mode == "batch" and deployment.provider in NATIVE_BATCH_PROVIDERS:
        mode = "native"
    if mode != "native":
        return deployment
    if deployment.provider not in NATIVE_BATCH_PROVIDERS:
        known = ", ".join(sorted(NATIVE_BATCH_PROVIDERS))
        detail = f"`native` needs a provider with a batch API ({known}), not {deployment.provider}"
        raise ConfigError(f"{path}.model_info.batch_mode", detail)
    return msgspec.structs.replace(deployment, native_batches=True)


def _provider_model(model: str, custom_llm_provider: str | None) -> str:
    if not custom_llm_provider or model.startswith(f"{custom_llm_provider}/"):
        return model
    return f"{custom_llm_provider}/{model}"


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def warn_unknown_groups(
    router: RouterSettings,
    litellm: LiteLLMSettings,
    groups: Collection[str],
    problems: Problems,
) -> None:
    """Fallbacks and aliases naming no model group fail only when used: say so at start.

    A warning, not an error: LiteLLM starts with such a config, and it must run here too."""
    known = set(groups) | set(router.model_group_alias) | set(litellm.model_group_alias) | {"*"}
    referenced = [*_referenced_groups("router_settings", router)]
    referenced += _referenced_groups("litellm_settings", litellm)
    for section, aliases in (
        ("router_settings", router.model_group_alias),
        ("litellm_settings", litellm.model_group_alias),
    ):
        for alias, value in aliases.items():
            group = value if isinstance(value, str) else value.model
            referenced.append((f"{section}.model_group_alias.{alias}", group))
    for path, name in referenced:
        if name not in known:
            problems.warn(path, f"no model group is named {name!r}")


def _referenced_groups(
    section: str, settings: RouterSettings | LiteLLMSettings
) -> Iterator[tuple[str, str]]:
    for kind in ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks"):
        rules: FallbackRules | None = getattr(settings, kind)
        for i, rule in enumerate(rules or []):
            for source, targets in rule.items():
                yield f"{section}.{kind}[{i}]", source
                for j, target in enumerate(targets):
                    yield f"{section}.{kind}[{i}].{source}[{j}]", target
    for i, target in enumerate(settings.default_fallbacks or []):
        yield f"{section}.default_fallbacks[{i}]", target
