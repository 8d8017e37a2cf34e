"""What a finished call cost, and the bookkeeping attached to every response
(`_hidden_params`, as LiteLLM users know it)."""

from __future__ import annotations

from typing import Any

from workers import pricing
from workers.deployment import Deployment
from workers.wire import ChatCompletion, EmbeddingResponse, Usage


def price_override(deployment: Deployment) -> pricing.PriceOverride | None:
    if deployment.input_cost_per_token is None and deployment.output_cost_per_token is None:
        return None
    return pricing.PriceOverride(
        input_cost_per_token=deployment.input_cost_per_token,
        output_cost_per_token=deployment.output_cost_per_token,
    )


def cost_for(usage: Usage | None, deployment: Deployment) -> pricing.Cost:
    """The cost of `usage` on `deployment`; unknown (None) when the model has no price."""
    price = pricing.lookup_price(deployment.provider, deployment.base_model or deployment.model)
    if usage is None:
        return pricing.Cost(cost_usd=None, is_known=False)
    return pricing.cost_of(usage, price, price_override(deployment))


def hidden_params(deployment: Deployment, usage: Usage | None, **extra: Any) -> dict[str, Any]:
    cost = cost_for(usage, deployment)
    return {
        "provider": deployment.provider,
        "model": deployment.model,
        "deployment": deployment.label,
        "api_base": deployment.api_base,
        "cost_usd": cost.cost_usd,
        # Where LiteLLM users read the cost and the provider (issue #16).
        "response_cost": cost.cost_usd,
        "custom_llm_provider": deployment.provider,
        "cost_known": cost.is_known,
        **extra,
    }


def attach(
    response: ChatCompletion | EmbeddingResponse, deployment: Deployment, **extra: Any
) -> None:
    if isinstance(response, ChatCompletion):
        usage = response.usage
    else:
        usage = Usage(
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=0,
            total_tokens=response.usage.total_tokens,
        )
    response.hidden_params = hidden_params(deployment, usage, **extra)
