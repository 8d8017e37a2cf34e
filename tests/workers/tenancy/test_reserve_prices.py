"""What a budget reservation assumes per token (issue #17): the dearest known price of a
group, the requested model's for a wildcard group, nothing for a group that has no price
(its requests settle at $0 too)."""

from __future__ import annotations

from workers import pricing
from workers.deployment import Deployment
from workers.tenancy.reserve_prices import FREE, ReservePrices


def _price(model: str) -> tuple[float, float]:
    price = pricing.lookup_price("openai", model)
    assert price is not None
    return price.input_cost_per_token or 0.0, price.output_cost_per_token or 0.0


def test_a_group_reserves_at_its_dearest_deployment() -> None:
    cheap = Deployment(provider="openai", model="gpt-4o-mini")
    dear = Deployment(provider="openai", model="gpt-4o")
    unpriced = Deployment(provider="ollama", model="llama3")
    prices = ReservePrices({"mixed": [cheap, unpriced, dear]})
    assert prices.per_token("mixed", "mixed") == _price("gpt-4o")


def test_a_price_override_counts_as_the_deployments_price() -> None:
    local = Deployment(
        provider="ollama", model="llama3", input_cost_per_token=0.0, output_cost_per_token=0.001
    )
    assert ReservePrices({"local": [local]}).per_token("local", "local") == (0.0, 0.001)


def test_a_wildcard_group_reserves_at_the_requested_models_price() -> None:
    prices = ReservePrices({"openai/*": [Deployment(provider="openai", model="*")]})
    assert prices.per_token("openai/*", "openai/gpt-4o") == _price("gpt-4o")
    assert prices.per_token("openai/*", "openai/gpt-4o-mini") == _price("gpt-4o-mini")
    assert prices.per_token("openai/*", "openai/no-such-model") == FREE


def test_a_group_without_any_price_reserves_nothing() -> None:
    local = Deployment(provider="ollama", model="llama3")
    assert ReservePrices({"local": [local]}).per_token("local", "local") == FREE
    assert ReservePrices({}).per_token("unknown", "unknown") == FREE
