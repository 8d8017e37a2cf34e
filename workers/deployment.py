"""A deployment: everything an adapter needs to reach one model on one provider.

It is the resolved form of LiteLLM's `litellm_params` (the config loader builds it from YAML)
or of the SDK's keyword arguments. Credentials that were not given explicitly are looked up
in the provider's usual environment variables here, from a mapping the caller passes in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec


class Secret(str):
    """A string that never shows itself in a repr, a log line or an error message."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


class ProviderDefaults(msgspec.Struct, frozen=True, kw_only=True):
    """Where a provider lives and which environment variables hold its settings."""

    api_base: str | None = None
    api_base_env: tuple[str, ...] = ()
    api_key_env: tuple[str, ...] = ()
    api_version: str | None = None
    api_version_env: tuple[str, ...] = ()
    requires_api_key: bool = True


class Deployment(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    # The provider-side model id (for Azure, the deployment name).
    model: str
    api_base: str | None = None
    api_key: Secret | None = None
    api_version: str | None = None
    organization: str | None = None
    timeout_s: float | None = None
    stream_timeout_s: float | None = None
    drop_params: bool = False
    extra_headers: dict[str, str] = {}
    # Request parameters set on the deployment (e.g. `temperature` in litellm_params) that
    # apply when the request does not set them.
    default_params: dict[str, Any] = {}
    # Provider-specific settings (aws_region_name, aws_profile_name, ...), checked by the adapter.
    options: dict[str, Any] = {}
    # A human name for logs, metrics and response headers (model_list entry id or model string).
    name: str = ""
    # The model whose prices and context window apply (an Azure deployment name says
    # nothing about its model; LiteLLM's `model_info.base_model`).
    base_model: str | None = None
    # Per-deployment price overrides (LiteLLM's litellm_params names), USD per token.
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    # Whether a stream cut off by its worker's death continues here (issue #15); None: the
    # service-wide switchboard_settings.stream_continuation decides.
    stream_continuation: bool | None = None
    # LiteLLM's mock parameters (workers/providers/mock.py): answer with this text, or time
    # out, without calling the provider.
    mock_response: str | None = None
    mock_timeout: bool = False
    # Whether /v1/batches sends this deployment's lines to the provider's own batch API
    # (model_info.batch_mode `native`; issue #20) rather than Switchboard's batch lane.
    native_batches: bool = False

    @property
    def label(self) -> str:
        return self.name or f"{self.provider}/{self.model}"


def resolve_deployment(
    provider: str,
    model: str,
    defaults: ProviderDefaults,
    environ: Mapping[str, str],
    **given: Any,
) -> Deployment:
    """Fill what the caller left out from the provider's environment variables and defaults."""
    api_key = given.pop("api_key", None) or _first_env(environ, defaults.api_key_env)
    api_base = (
        given.pop("api_base", None)
        or _first_env(environ, defaults.api_base_env)
        or defaults.api_base
    )
    api_version = (
        given.pop("api_version", None)
        or _first_env(environ, defaults.api_version_env)
        or defaults.api_version
    )
    return Deployment(
        provider=provider,
        model=model,
        api_key=Secret(api_key) if api_key else None,
        api_base=api_base.rstrip("/") if api_base else None,
        api_version=api_version,
        **{k: v for k, v in given.items() if v is not None},
    )


def _first_env(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None
