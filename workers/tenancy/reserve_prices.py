"""The price a budget reservation assumes (issue #17): per token in and out, for a request
to a model group, before the router picks a deployment.

- A group's dearest known price among its deployments (the override in litellm_params
  first, then the price table), so the reservation bounds whichever one serves it.
- A wildcard group (`openai/*`) is priced per requested model: its deployments as the
  model the request named (the worker prices it the same way at settlement).
- A group none of whose deployments has a known price reserves nothing: its requests also
  settle at $0 (as in LiteLLM, an unpriced model's spend is 0), so reserving more would
  refuse requests that never spend. Give such a deployment `input_cost_per_token` /
  `output_cost_per_token` to have its traffic counted against budgets.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from workers import pricing
from workers.deployment import Deployment
from workers.routing.wildcards import is_wildcard, upstream_model

PerToken = tuple[float, float]  # USD per prompt token, per completion token
FREE: Final = (0.0, 0.0)
# Requested names of wildcard groups priced so far, newest last (clients choose them).
MAX_REMEMBERED: Final = 10_000


class ReservePrices:
    def __init__(self, deployments: Mapping[str, Sequence[Deployment]]) -> None:
        self._deployments = deployments
        self._groups = {
            group: dearest(targets)
            for group, targets in deployments.items()
            if not is_wildcard(group)
        }
        self._wildcards: OrderedDict[tuple[str, str], PerToken] = OrderedDict()

    def per_token(self, group: str, model: str) -> PerToken:
        """What a request for `model` (served by `group`) reserves per token."""
        price = self._groups.get(group)
        if price is not None:
            return price
        if not is_wildcard(group):
            return FREE
        key = (group, model)
        price = self._wildcards.get(key)
        if price is None:
            targets = self._deployments.get(group, ())
            concrete = [
                msgspec.structs.replace(t, model=upstream_model(t.model, group, model))
                for t in targets
            ]
            price = self._wildcards[key] = dearest(concrete)
            if len(self._wildcards) > MAX_REMEMBERED:
                self._wildcards.popitem(last=False)
        return price


def dearest(targets: Sequence[Deployment]) -> PerToken:
    """The dearest input and output price per token among deployments (0 where none has
    one)."""
    price_in = price_out = 0.0
    for target in targets:
        base = pricing.lookup_price(target.provider, target.base_model or target.model)
        override = pricing.PriceOverride(
            input_cost_per_token=target.input_cost_per_token,
            output_cost_per_token=target.output_cost_per_token,
        )
        price = pricing.apply_override(base, override)
        if price is not None:
            price_in = max(price_in, price.input_cost_per_token or 0.0)
            price_out = max(price_out, price.output_cost_per_token or 0.0)
    return price_in, price_out
