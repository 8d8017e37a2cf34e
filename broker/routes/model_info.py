"""GET /model/info (and /v1/model/info), LiteLLM's: each model group the key may call, one
entry per deployment, with prices, token limits and the routing strategy, never a secret
(no api_key, no api_base: a base URL may carry a token). The console's Models page reads it."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from broker.errors import JSON
from broker.routes.keys import FRONT_DOOR
from workers.deployment import Deployment
from workers.pricing import resolve_price

encode = msgspec.json.Encoder().encode


def deployment_info(group: str, deployment: Deployment, strategy: str) -> dict[str, Any]:
    price = resolve_price(deployment.base_model or deployment.model, deployment.provider)
    if price is None and deployment.base_model:
        price = resolve_price(deployment.base_model)
    return {
        "model_name": group,
        "litellm_params": {"model": f"{deployment.provider}/{deployment.model}"},
        "model_info": {
            "id": deployment.label,
            "base_model": deployment.base_model,
            "litellm_provider": deployment.provider,
            "mode": price.mode if price else None,
            # The deployment's own prices win over the table's, as they do for cost.
            "input_cost_per_token": deployment.input_cost_per_token
            if deployment.input_cost_per_token is not None
            else (price.input_cost_per_token if price else None),
            "output_cost_per_token": deployment.output_cost_per_token
            if deployment.output_cost_per_token is not None
            else (price.output_cost_per_token if price else None),
            "max_input_tokens": price.max_input_tokens if price else None,
            "max_output_tokens": price.max_output_tokens if price else None,
            "routing_strategy": strategy,
        },
    }


async def model_info(request: web.Request) -> web.Response:
    front = request.app[FRONT_DOOR]
    caller = front.auth.check(request)
    config = front.config
    strategy = str(config.router_settings.routing_strategy)
    data = [
        deployment_info(group, deployment, strategy)
        for group in front.models_for(caller)
        for deployment in config.deployments.get(group, ())
    ]
    return web.Response(body=encode({"data": data}), content_type=JSON)
