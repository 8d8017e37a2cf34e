"""Model prices and context windows, and the dollar cost of one call.

The table ships as package data (`workers/data/prices.json`, USD per token) and is decoded once,
on first use. `lookup_price` resolves a deployment's `provider/model` to a `ModelPrice`;
`cost_of` turns the hub's normal-form `Usage` into a `Cost`; `completion_cost` is the
LiteLLM-shaped entry point for SDK users.

Resolution order of `lookup_price(provider, model)`, first hit wins:
1. `provider/model` exactly (a leading `provider/` on `model` is ignored);
2. `host/model` for providers that serve another provider's model names under those names
   (an Azure deployment whose base model is `gpt-4o` -> `openai/gpt-4o`);
3. the same two keys with a dated snapshot suffix removed (`-2024-08-06`, `-20250929`,
   `@20250929`), the provider's own key before the host's;
4. the table's `aliases` (`anthropic/claude-sonnet-4-5` -> its dated id) for any key above.
A model that resolves nowhere has no price: its cost is unknown (`None`), never 0.
"""

from __future__ import annotations

import datetime
import functools
import importlib.resources
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import msgspec

from workers.errors import NotFound
from workers.providers import HOSTS, MODEL_MAKERS
from workers.wire import ChatCompletion, EmbeddingResponse, Usage, make_usage


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One model's prices (USD per token) and token limits."""

    provider: str = ""
    mode: Literal["chat", "embedding"] = "chat"
    input_cost_per_token: float
    # None: the source lists no output price (embeddings); output tokens then make cost unknown.
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    # Prompt-cache writes (Anthropic's 5-minute TTL price; Bedrock's cacheWriteInputTokens).
    cache_creation_input_token_cost: float | None = None
    # Only where a provider prices reasoning apart from output; else reasoning is output.
    output_cost_per_reasoning_token: float | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    source: str = ""
    as_of: datetime.date | None = None
    note: str = ""


class PriceOverride(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Deployment-level prices (LiteLLM's `litellm_params` names); each set field wins."""

    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    cache_creation_input_token_cost: float | None = None
    output_cost_per_reasoning_token: float | None = None


class PriceTable(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    schema_version: int
    units: str
    notes: list[str] = []
    aliases: dict[str, str] = {}
    models: dict[str, ModelPrice]


class CostBreakdown(msgspec.Struct, frozen=True, kw_only=True):
    """Where the dollars went; the parts add up to `Cost.cost_usd`."""

    input_usd: float = 0.0
    cached_input_usd: float = 0.0
    cache_write_usd: float = 0.0
    output_usd: float = 0.0
    reasoning_usd: float = 0.0

    @property
    def total_usd(self) -> float:
        return (
            self.input_usd
            + self.cached_input_usd
            + self.cache_write_usd
            + self.output_usd
            + self.reasoning_usd
        )


class Cost(msgspec.Struct, frozen=True, kw_only=True):
    cost_usd: float | None
    is_known: bool
    breakdown: CostBreakdown | None = None


UNKNOWN_COST = Cost(cost_usd=None, is_known=False)

# Providers that also serve another provider's models under that provider's names.
_HOSTED_NAMES: dict[str, tuple[str, ...]] = {"azure": ("openai",), "vertex_ai": ("anthropic",)}
# LiteLLM's API-route prefixes, which say how a model is called, not which it is
# (`bedrock/converse/<id>`, `bedrock/invoke/<id>`).
_ROUTE_PREFIXES: dict[str, tuple[str, ...]] = {"bedrock": ("converse/", "invoke/")}
# Order in which a bare model name (no `provider/`) is looked for: the provider registry's
# model makers first, then the hosts, so `gpt-4o` is OpenAI's price rather than Azure's.
_BARE_NAME_ORDER: tuple[str, ...] = (*MODEL_MAKERS, *HOSTS)
_SNAPSHOT_SUFFIX = re.compile(r"(?:-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8})$")
_OVERRIDE_FIELDS: tuple[str, ...] = tuple(PriceOverride.__struct_fields__)
_decode_table = msgspec.json.Decoder(PriceTable).decode


@functools.cache
def price_table() -> PriceTable:
    """The shipped table, decoded on first use; typos in it fail here, not mid-request."""
    raw = importlib.resources.files("workers").joinpath("data/prices.json").read_bytes()
    return _decode_table(raw)


# --------------------------------------------------------------------------- lookup


@functools.lru_cache(maxsize=4096)
def lookup_price(provider: str, model: str) -> ModelPrice | None:
    """The price of `model` served by `provider`, or None when the table does not know it."""
    table = price_table()
    keys = list(_candidate_keys(provider, model))
    for key in keys:
        if (price := table.models.get(key)) is not None:
            return price
    for key in keys:
        if (target := table.aliases.get(key)) is not None:
            return table.models.get(target)
    return None


def _candidate_keys(provider: str, model: str) -> Iterator[str]:
    model = model.removeprefix(f"{provider}/")
    for route in _ROUTE_PREFIXES.get(provider, ()):
        model = model.removeprefix(route)
    providers = (provider, *_HOSTED_NAMES.get(provider, ()))
    for owner in providers:
        yield f"{owner}/{model}"
    stripped = _SNAPSHOT_SUFFIX.sub("", model)
    if stripped != model:
        for owner in providers:
            yield f"{owner}/{stripped}"


def context_window(provider: str, model: str) -> int | None:
    """Most prompt tokens the model accepts (its context window), if known."""
    price = lookup_price(provider, model)
    return price.max_input_tokens if price else None


def max_output_tokens(provider: str, model: str) -> int | None:
    price = lookup_price(provider, model)
    return price.max_output_tokens if price else None


def resolve_price(model: str, provider: str | None = None) -> ModelPrice | None:
    """Price for a model string as SDK users write it: `provider/model` or a bare name.

    A bare name is looked for under each provider in `_BARE_NAME_ORDER`; a prefix the table
    does not know as a provider is treated as part of the name (`meta-llama/...`).
    """
    if provider:
        return lookup_price(provider, model)
    prefix, sep, rest = model.partition("/")
    if sep and prefix in _known_providers():
        return lookup_price(prefix, rest)
    for candidate in _BARE_NAME_ORDER:
        if (price := lookup_price(candidate, model)) is not None:
            return price
    return None


@functools.cache
def _known_providers() -> frozenset[str]:
    named = {price.provider for price in price_table().models.values()}
    return frozenset(named | set(_HOSTED_NAMES) | set(_BARE_NAME_ORDER))


# --------------------------------------------------------------------------- cost


def apply_override(price: ModelPrice | None, override: PriceOverride | None) -> ModelPrice | None:
    """`price` with the override's set fields winning; an override with an input price makes
    an unknown model priced (its output price, if not given, stays unknown)."""
    if override is None:
        return price
    changes = {
        name: value for name in _OVERRIDE_FIELDS if (value := getattr(override, name)) is not None
    }
    if price is not None:
        return msgspec.structs.replace(price, **changes) if changes else price
    if "input_cost_per_token" not in changes:
        return None
    return ModelPrice(**changes)


def cost_of(usage: Usage, price: ModelPrice | None, override: PriceOverride | None = None) -> Cost:
    """Dollar cost of one call's usage in the hub's normal form.

    `prompt_tokens` includes cache reads (`cached_tokens`, at the cache-read price) and cache
    writes (`cache_write_tokens`, at the cache-write price); the rest is billed at the input
    price. A model without a cache price bills those tokens at the input price.
    `completion_tokens` includes `reasoning_tokens`, billed at the reasoning price where the
    model has one and at the output price otherwise.
    """
    effective = apply_override(price, override)
    if effective is None:
        return UNKNOWN_COST
    cached = min(max(usage.cached_tokens, 0), usage.prompt_tokens)
    written = min(max(usage.cache_write_tokens, 0), usage.prompt_tokens - cached)
    reasoning = min(max(usage.reasoning_tokens, 0), usage.completion_tokens)
    plain_output = usage.completion_tokens - reasoning
    output_price = effective.output_cost_per_token
    if usage.completion_tokens > 0 and output_price is None:
        # Tokens were produced that we hold no price for: guessing 0 would under-bill.
        return UNKNOWN_COST
    input_price = effective.input_cost_per_token
    reasoning_price = _first(effective.output_cost_per_reasoning_token, output_price, 0.0)
    breakdown = CostBreakdown(
        input_usd=(usage.prompt_tokens - cached - written) * input_price,
        cached_input_usd=cached * _first(effective.cache_read_input_token_cost, input_price),
        cache_write_usd=written * _first(effective.cache_creation_input_token_cost, input_price),
        output_usd=plain_output * (output_price or 0.0),
        reasoning_usd=reasoning * reasoning_price,
    )
    return Cost(cost_usd=breakdown.total_usd, is_known=True, breakdown=breakdown)


def _first(*prices: float | None) -> float:
    for price in prices:
        if price is not None:
            return price
    raise ValueError("no price given")


def completion_cost(
    completion_response: ChatCompletion | EmbeddingResponse | None = None,
    *,
    model: str | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cached_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    custom_llm_provider: str | None = None,
    custom_cost_per_token: Mapping[str, float] | None = None,
    override: PriceOverride | None = None,
) -> float | None:
    """LiteLLM's `completion_cost`: USD for a response, or for explicit token counts.

    `completion_cost(completion_response=resp)` returns the cost the gateway already put in
    `resp._hidden_params` (`cost_usd`, or LiteLLM's `response_cost`) when there is one, else
    prices `resp.usage` by `resp.model`. `completion_cost(model=..., prompt_tokens=...,
    completion_tokens=...)` prices the counts. A model the table does not know gives None,
    unless prices are passed (`custom_cost_per_token={"input_cost_per_token": ...,
    "output_cost_per_token": ...}` as in LiteLLM, or `override`).
    """
    override = _merge_overrides(override, custom_cost_per_token)
    if completion_response is not None:
        hidden = completion_response.hidden_params
        known = hidden.get("cost_usd", hidden.get("response_cost"))
        if known is not None and override is None:
            return float(known)
        model = model or completion_response.model
        custom_llm_provider = custom_llm_provider or _hidden_provider(hidden)
        usage = _response_usage(completion_response)
        if usage is None:
            return None
    else:
        if not model:
            raise ValueError("completion_cost needs completion_response or model")
        usage = make_usage(
            prompt_tokens,
            completion_tokens,
            cached_tokens=cached_tokens,
            reasoning_tokens=reasoning_tokens,
            cache_write_tokens=cache_write_tokens,
        )
    price = resolve_price(model, custom_llm_provider) if model else None
    return cost_of(usage, price, override).cost_usd


def cost_per_token(
    model: str,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    *,
    custom_llm_provider: str | None = None,
) -> tuple[float, float]:
    """LiteLLM's `cost_per_token`: (prompt cost, completion cost) in USD for token counts.

    Raises NotFound when the price table does not know the model (no silent zero)."""
    price = resolve_price(model, custom_llm_provider)
    if price is None:
        raise NotFound(
            f"no price is known for model `{model}`; pass custom prices to completion_cost",
            param="model",
            code="model_price_unknown",
        )
    output = price.output_cost_per_token
    if output is None and completion_tokens:
        raise NotFound(
            f"model `{model}` has no output price (an embedding model?)",
            param="model",
            code="model_price_unknown",
        )
    return prompt_tokens * price.input_cost_per_token, completion_tokens * (output or 0.0)


def _merge_overrides(
    override: PriceOverride | None, custom: Mapping[str, float] | None
) -> PriceOverride | None:
    if not custom:
        return override
    given = msgspec.convert(dict(custom), PriceOverride)
    if override is None:
        return given
    changes = {
        name: value for name in _OVERRIDE_FIELDS if (value := getattr(given, name)) is not None
    }
    return msgspec.structs.replace(override, **changes)


def _hidden_provider(hidden: Mapping[str, Any]) -> str | None:
    provider = hidden.get("custom_llm_provider") or hidden.get("provider")
    return provider if isinstance(provider, str) and provider else None


def _response_usage(response: ChatCompletion | EmbeddingResponse) -> Usage | None:
    if isinstance(response, EmbeddingResponse):
        return make_usage(response.usage.prompt_tokens, 0)
    return response.usage


__all__ = [
    "UNKNOWN_COST",
    "Cost",
    "CostBreakdown",
    "ModelPrice",
    "PriceOverride",
    "PriceTable",
    "apply_override",
    "completion_cost",
    "context_window",
    "cost_of",
    "lookup_price",
    "max_output_tokens",
    "price_table",
    "resolve_price",
]
