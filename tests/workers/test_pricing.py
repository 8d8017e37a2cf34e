"""The price table and cost computation (issue #3)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from workers.pricing import (
    ModelPrice,
    PriceOverride,
    completion_cost,
    context_window,
    cost_of,
    lookup_price,
    max_output_tokens,
    price_table,
    resolve_price,
)
from workers.wire import (
    ChatCompletion,
    Choice,
    Embedding,
    EmbeddingResponse,
    EmbeddingUsage,
    Usage,
    assistant_message,
    make_usage,
)

M = 1e-6  # a per-million-token list price times M is a per-token price


def known(provider: str, model: str) -> ModelPrice:
    price = lookup_price(provider, model)
    assert price is not None, f"{provider}/{model} should be in the table"
    return price


def chat_response(model: str, usage: Usage | None, **hidden: Any) -> ChatCompletion:
    response = ChatCompletion(
        id="chatcmpl-1",
        created=0,
        model=model,
        choices=[Choice(message=assistant_message("hi"), finish_reason="stop")],
        usage=usage,
    )
    if hidden:
        response._hidden_params = hidden  # set by whoever produced the response
    return response


# --------------------------------------------------------------------------- plain cost


def test_plain_chat_cost_is_input_plus_output_tokens_at_list_price() -> None:
    cost = cost_of(make_usage(1_000, 500), known("openai", "gpt-4o-mini"))
    assert cost.is_known
    assert cost.cost_usd == pytest.approx(1_000 * 0.15 * M + 500 * 0.60 * M)
    assert cost.breakdown is not None
    assert cost.breakdown.input_usd == pytest.approx(1_000 * 0.15 * M)
    assert cost.breakdown.output_usd == pytest.approx(500 * 0.60 * M)


def test_usage_without_details_is_billed_as_plain_tokens() -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30)
    cost = cost_of(usage, known("openai", "gpt-4o"))
    assert cost.cost_usd == pytest.approx(10 * 2.5 * M + 20 * 10 * M)


def test_embedding_cost_counts_prompt_tokens_only() -> None:
    price = known("openai", "text-embedding-3-small")
    assert price.mode == "embedding"
    cost = cost_of(make_usage(1_000_000, 0), price)
    assert cost.cost_usd == pytest.approx(0.02)


def test_embedding_response_is_priced_from_its_prompt_tokens() -> None:
    response = EmbeddingResponse(
        data=[Embedding(index=0, embedding=[0.1, 0.2])],
        model="text-embedding-3-large",
        usage=EmbeddingUsage(prompt_tokens=2_000, total_tokens=2_000),
    )
    assert completion_cost(completion_response=response) == pytest.approx(2_000 * 0.13 * M)


# --------------------------------------------------------------------------- prompt caching


def test_openai_cached_tokens_are_billed_at_the_cache_read_price() -> None:
    usage = make_usage(10_000, 200, cached_tokens=8_000)
    cost = cost_of(usage, known("openai", "gpt-4o-mini"))
    assert cost.breakdown is not None
    assert cost.breakdown.input_usd == pytest.approx(2_000 * 0.15 * M)
    assert cost.breakdown.cached_input_usd == pytest.approx(8_000 * 0.075 * M)
    assert cost.cost_usd == pytest.approx(2_000 * 0.15 * M + 8_000 * 0.075 * M + 200 * 0.6 * M)
    uncached = cost_of(make_usage(10_000, 200), known("openai", "gpt-4o-mini")).cost_usd
    assert cost.cost_usd is not None and uncached is not None
    assert cost.cost_usd < uncached


def test_anthropic_cache_reads_and_writes_have_their_own_prices() -> None:
    # prompt_tokens = input_tokens + cache_creation_input_tokens + cache_read_input_tokens
    usage = make_usage(1_000 + 2_000 + 5_000, 300, cached_tokens=5_000, cache_write_tokens=2_000)
    cost = cost_of(usage, known("anthropic", "claude-sonnet-4-5-20250929"))
    assert cost.breakdown is not None
    assert cost.breakdown.input_usd == pytest.approx(1_000 * 3 * M)
    assert cost.breakdown.cache_write_usd == pytest.approx(2_000 * 3.75 * M)
    assert cost.breakdown.cached_input_usd == pytest.approx(5_000 * 0.30 * M)
    assert cost.breakdown.output_usd == pytest.approx(300 * 15 * M)
    assert cost.cost_usd == pytest.approx(cost.breakdown.total_usd)


def test_cache_tokens_fall_back_to_the_input_price_when_the_model_has_no_cache_price() -> None:
    price = ModelPrice(input_cost_per_token=1 * M, output_cost_per_token=2 * M)
    usage = make_usage(100, 0, cached_tokens=40, cache_write_tokens=10)
    assert cost_of(usage, price).cost_usd == pytest.approx(100 * 1 * M)


def test_inconsistent_cache_counts_never_bill_negative_input() -> None:
    price = ModelPrice(input_cost_per_token=1 * M, output_cost_per_token=2 * M)
    usage = make_usage(50, 0, cached_tokens=80)
    cost = cost_of(usage, price)
    assert cost.breakdown is not None
    assert cost.breakdown.input_usd == 0.0
    assert cost.cost_usd == pytest.approx(50 * 1 * M)


# --------------------------------------------------------------------------- reasoning


def test_reasoning_tokens_use_a_distinct_reasoning_price_when_the_model_has_one() -> None:
    price = ModelPrice(
        input_cost_per_token=1 * M,
        output_cost_per_token=4 * M,
        output_cost_per_reasoning_token=3 * M,
    )
    cost = cost_of(make_usage(100, 1_000, reasoning_tokens=600), price)
    assert cost.breakdown is not None
    assert cost.breakdown.output_usd == pytest.approx(400 * 4 * M)
    assert cost.breakdown.reasoning_usd == pytest.approx(600 * 3 * M)
    assert cost.cost_usd == pytest.approx(100 * M + 400 * 4 * M + 600 * 3 * M)


def test_reasoning_tokens_are_output_tokens_when_the_model_has_no_reasoning_price() -> None:
    price = ModelPrice(input_cost_per_token=1 * M, output_cost_per_token=4 * M)
    with_reasoning = cost_of(make_usage(100, 1_000, reasoning_tokens=600), price)
    without = cost_of(make_usage(100, 1_000), price)
    assert with_reasoning.breakdown is not None
    assert with_reasoning.breakdown.reasoning_usd == pytest.approx(600 * 4 * M)
    assert with_reasoning.cost_usd == pytest.approx(without.cost_usd)


def test_table_reasoning_price_is_used_for_perplexity_deep_research() -> None:
    price = known("perplexity", "sonar-deep-research")
    assert price.output_cost_per_reasoning_token == pytest.approx(3 * M)
    cost = cost_of(make_usage(0, 100, reasoning_tokens=100), price)
    assert cost.cost_usd == pytest.approx(100 * 3 * M)


# --------------------------------------------------------------------------- unknown models


def test_unknown_model_has_unknown_cost_never_zero() -> None:
    assert lookup_price("openai", "gpt-does-not-exist") is None
    cost = cost_of(make_usage(1_000, 1_000), None)
    assert cost.cost_usd is None
    assert cost.is_known is False
    assert cost.breakdown is None


def test_completion_cost_is_none_for_an_unknown_model() -> None:
    assert completion_cost(model="no-such-model", prompt_tokens=10, completion_tokens=10) is None
    response = chat_response("acme/secret-model", make_usage(10, 10))
    assert completion_cost(completion_response=response) is None


def test_output_tokens_without_an_output_price_make_the_cost_unknown() -> None:
    embedding_price = known("openai", "text-embedding-3-small")
    assert cost_of(make_usage(10, 5), embedding_price).cost_usd is None


def test_response_without_usage_has_no_cost() -> None:
    assert completion_cost(completion_response=chat_response("gpt-4o", None)) is None


# --------------------------------------------------------------------------- overrides


def test_deployment_override_wins_over_the_table() -> None:
    override = PriceOverride(input_cost_per_token=1 * M, output_cost_per_token=2 * M)
    cost = cost_of(make_usage(1_000, 1_000), known("openai", "gpt-4o"), override)
    assert cost.cost_usd == pytest.approx(1_000 * 1 * M + 1_000 * 2 * M)


def test_override_keeps_table_fields_it_does_not_set() -> None:
    override = PriceOverride(input_cost_per_token=1 * M)
    usage = make_usage(1_000, 100, cached_tokens=500)
    cost = cost_of(usage, known("openai", "gpt-4o-mini"), override)
    assert cost.cost_usd == pytest.approx(500 * 1 * M + 500 * 0.075 * M + 100 * 0.6 * M)


def test_override_makes_an_unknown_model_known() -> None:
    override = PriceOverride(input_cost_per_token=1 * M, output_cost_per_token=2 * M)
    cost = cost_of(make_usage(10, 20), None, override)
    assert cost.is_known
    assert cost.cost_usd == pytest.approx(10 * M + 40 * M)
    assert completion_cost(
        model="my-finetune", prompt_tokens=10, completion_tokens=20, override=override
    ) == pytest.approx(50 * M)


def test_litellm_custom_cost_per_token_prices_an_unknown_model() -> None:
    custom = {"input_cost_per_token": 1 * M, "output_cost_per_token": 2 * M}
    assert completion_cost(
        model="my-finetune", prompt_tokens=10, completion_tokens=20, custom_cost_per_token=custom
    ) == pytest.approx(50 * M)


def test_override_without_an_input_price_leaves_an_unknown_model_unknown() -> None:
    cost = cost_of(make_usage(10, 20), None, PriceOverride(output_cost_per_token=2 * M))
    assert cost.cost_usd is None


# --------------------------------------------------------------------------- resolution


def test_dated_snapshot_resolves_to_the_base_model() -> None:
    assert lookup_price("openai", "gpt-4o-2024-08-06") == known("openai", "gpt-4o")
    assert lookup_price("openai", "gpt-4.1-mini-2025-04-14") == known("openai", "gpt-4.1-mini")


def test_exact_snapshot_entry_wins_over_snapshot_stripping() -> None:
    # The first gpt-4o snapshot kept its launch price.
    assert known("openai", "gpt-4o-2024-05-13").input_cost_per_token == pytest.approx(5 * M)


def test_alias_resolves_to_the_dated_anthropic_id() -> None:
    dated = known("anthropic", "claude-sonnet-4-5-20250929")
    assert lookup_price("anthropic", "claude-sonnet-4-5") == dated
    assert lookup_price("anthropic", "claude-sonnet-4-5@20250929") == dated
    assert lookup_price("anthropic", "claude-3-5-sonnet-latest") == known(
        "anthropic", "claude-3-5-sonnet-20241022"
    )


def test_azure_uses_its_own_entry_then_openai_names() -> None:
    assert known("azure", "gpt-4o-mini").input_cost_per_token == pytest.approx(0.165 * M)
    assert lookup_price("azure", "gpt-4o-mini-2024-07-18") == known("azure", "gpt-4o-mini")
    assert lookup_price("azure", "o3-mini") == known("openai", "o3-mini")
    assert lookup_price("azure", "text-embedding-3-small") == known(
        "openai", "text-embedding-3-small"
    )


def test_bedrock_model_ids_and_inference_profiles_resolve() -> None:
    base = known("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0")
    assert base.cache_creation_input_token_cost == pytest.approx(3.75 * M)
    profile = known("bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0")
    assert profile.input_cost_per_token == base.input_cost_per_token
    assert profile.max_input_tokens == base.max_input_tokens == 200_000
    geo = known("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert (
        geo.input_cost_per_token
        > known("bedrock", "anthropic.claude-sonnet-4-5-20250929-v1:0").input_cost_per_token
    )


def test_resolve_price_accepts_prefixed_and_bare_names() -> None:
    assert resolve_price("gpt-4o-mini") == known("openai", "gpt-4o-mini")
    assert resolve_price("azure/gpt-4o-mini") == known("azure", "gpt-4o-mini")
    assert resolve_price("claude-haiku-4-5") == known("anthropic", "claude-haiku-4-5-20251001")
    assert resolve_price("meta-llama/Llama-3.3-70B-Instruct-Turbo") == known(
        "together_ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    )
    assert resolve_price("gpt-4o", provider="azure") == known("azure", "gpt-4o")


def test_model_string_repeating_the_provider_is_accepted() -> None:
    assert lookup_price("openai", "openai/gpt-4o") == known("openai", "gpt-4o")


def test_context_window_and_max_output_tokens() -> None:
    assert context_window("openai", "gpt-4.1") == 1_047_576
    assert max_output_tokens("openai", "gpt-4.1") == 32_768
    assert context_window("anthropic", "claude-sonnet-4-5") == 200_000
    assert context_window("openai", "no-such-model") is None
    assert max_output_tokens("openai", "no-such-model") is None


# --------------------------------------------------------------------------- completion_cost


def test_completion_cost_from_explicit_token_counts() -> None:
    assert completion_cost(
        model="gpt-4o-mini", prompt_tokens=1_000, completion_tokens=500
    ) == pytest.approx(1_000 * 0.15 * M + 500 * 0.6 * M)


def test_completion_cost_returns_the_cost_already_on_the_response() -> None:
    response = chat_response("gpt-4o-mini", make_usage(1_000, 500), cost_usd=0.125)
    assert completion_cost(completion_response=response) == 0.125
    litellm_style = chat_response("gpt-4o-mini", make_usage(1_000, 500), response_cost=0.5)
    assert completion_cost(litellm_style) == 0.5


def test_completion_cost_prices_the_response_usage_by_its_model() -> None:
    usage = make_usage(10_000, 200, cached_tokens=8_000)
    response = chat_response("gpt-4o-mini-2024-07-18", usage)
    expected = cost_of(usage, known("openai", "gpt-4o-mini")).cost_usd
    assert completion_cost(completion_response=response) == pytest.approx(expected)


def test_completion_cost_uses_the_provider_named_in_hidden_params() -> None:
    response = chat_response("gpt-4o-mini", make_usage(1_000, 0), custom_llm_provider="azure")
    assert completion_cost(completion_response=response) == pytest.approx(1_000 * 0.165 * M)


def test_completion_cost_needs_a_response_or_a_model() -> None:
    with pytest.raises(ValueError):
        completion_cost(prompt_tokens=1)


# --------------------------------------------------------------------------- the table itself


def test_table_header_states_schema_and_units() -> None:
    table = price_table()
    assert table.schema_version == 1
    assert "USD per token" in table.units


@pytest.mark.parametrize("key", sorted(price_table().models))
def test_every_table_entry_is_well_formed(key: str) -> None:
    price = price_table().models[key]
    assert key.startswith(f"{price.provider}/")
    assert price.input_cost_per_token > 0
    # Per-token prices: anything near a dollar is a per-million figure left unconverted.
    assert price.input_cost_per_token < 1e-3
    optional = (
        price.output_cost_per_token,
        price.cache_read_input_token_cost,
        price.cache_creation_input_token_cost,
        price.output_cost_per_reasoning_token,
    )
    assert all(0 < cost < 1e-3 for cost in optional if cost is not None)
    if price.cache_read_input_token_cost is not None:
        assert price.cache_read_input_token_cost < price.input_cost_per_token
    if price.cache_creation_input_token_cost is not None:
        assert price.cache_creation_input_token_cost >= price.input_cost_per_token
    assert price.source.startswith("https://")
    assert isinstance(price.as_of, datetime.date)
    assert price.max_input_tokens is not None and price.max_input_tokens > 0
    if price.mode == "chat":
        assert price.output_cost_per_token is not None
    if price.max_output_tokens is not None:
        assert price.max_output_tokens > 0


def test_every_alias_points_at_a_model_and_shadows_none() -> None:
    table = price_table()
    for alias, target in table.aliases.items():
        assert target in table.models, alias
        assert alias not in table.models, alias
        assert alias.split("/", 1)[0] == target.split("/", 1)[0], alias


def test_table_covers_every_provider_the_gateway_prices() -> None:
    providers = {price.provider for price in price_table().models.values()}
    assert providers >= {
        "openai",
        "azure",
        "anthropic",
        "gemini",
        "bedrock",
        "mistral",
        "groq",
        "deepseek",
        "xai",
        "together_ai",
        "fireworks_ai",
        "perplexity",
    }
