"""LiteLLM's /model/info view of the deployments (`model_name`, `litellm_params`,
`model_info`), built once from the config with nothing secret in it: no key or credential,
and an `api_base` without user info or query (issue #16).

Prices and token limits the config does not give come from the built-in price table
(`workers/pricing.py`), as LiteLLM's /model/info fills them from its model cost map; the
fields taken from the table are named in `model_info.from_price_table` (issue #21), so a
reader can tell the operator's figure from the table's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from broker.config.loader import Config
from workers import pricing
from workers.deployment import Deployment
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
            _add_prices(info, deployment)
            described.append({"model_name": group, "litellm_params": params, "model_info": info})
    return described


# model_info fields the price table knows, and where it says so.
TABLE_FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "max_input_tokens",
    "max_output_tokens",
)
FROM_TABLE = "from_price_table"


def _add_prices(info: dict[str, Any], deployment: Deployment) -> None:
    """The prices the worker charges by: the config's (litellm_params winning over
    model_info, as in billing), else the table's for the same model; limits likewise."""
    for name in ("input_cost_per_token", "output_cost_per_token"):
        configured = getattr(deployment, name)
        if configured is not None:
            info[name] = configured
    missing = [name for name in TABLE_FIELDS if info.get(name) is None]
    if not missing:
        return
    # The key accounting.cost_for looks up, so the page shows what a request costs.
    price = pricing.lookup_price(deployment.provider, deployment.base_model or deployment.model)
    if price is None:
        return
    taken = [name for name in missing if getattr(price, name) is not None]
    for name in taken:
        info[name] = getattr(price, name)
    if taken:
        info[FROM_TABLE] = taken


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
