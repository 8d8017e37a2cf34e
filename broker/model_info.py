"""LiteLLM's /model/info view of the deployments (`model_name`, `litellm_params`,
`model_info`), built once from the config with nothing secret in it: no key or credential,
and an `api_base` without user info or query (issue #16).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from broker.config.loader import Config
from workers.settings import ModelEntry

# litellm_params fields /model/info shows; credentials and provider secrets never.
_SHOWN_PARAMS = (
    "custom_llm_provider",
    "api_version",
    "rpm",
    "tpm",
    "timeout",
    "stream_timeout",
    "max_parallel_requests",
    "weight",
    "order",
    "tags",
    "region_name",
    "aws_region_name",
    "vertex_project",
    "vertex_location",
)


def describe_deployments(config: Config) -> list[dict[str, Any]]:
    """Every deployment as /model/info shows it, in config order."""
    described: list[dict[str, Any]] = []
    for group, deployments in config.deployments.items():
        for entry, deployment in zip(config.entries(group), deployments, strict=True):
            params = _shown_params(entry)
            params["model"] = f"{deployment.provider}/{deployment.model}"
            if deployment.api_base:
                params["api_base"] = _public_url(deployment.api_base)
            info = {
                **msgspec.to_builtins(entry.model_info),
                **entry.model_info.extra,
                "id": deployment.label,
            }
            info.pop("extra", None)
            described.append({"model_name": group, "litellm_params": params, "model_info": info})
    return described


def _shown_params(entry: ModelEntry) -> dict[str, Any]:
    params = entry.litellm_params
    shown = {name: getattr(params, name) for name in _SHOWN_PARAMS}
    return {k: v for k, v in msgspec.to_builtins(shown).items() if v not in (None, [], {})}


def _public_url(url: str) -> str:
    """The URL without user info, query or fragment (where credentials hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
