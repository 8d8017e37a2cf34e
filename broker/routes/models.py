"""GET /v1/models, /v1/models/{model} and LiteLLM's /model/info: what clients may ask for.

/model/info shows the deployments as `broker/model_info.py` describes them, once at start,
and how their groups are routed (`broker/model_routing.py`).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from broker.errors import JSON
from broker.model_routing import describe_routing
from broker.routes.keys import FRONT_DOOR
from workers.errors import ModelNotFound
from workers.wire import ModelCard, ModelList, encode

# The longest model id echoed in an error.
MAX_ECHOED_MODEL = 200


async def list_models(request: web.Request) -> web.Response:
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    models = ModelList(data=[ModelCard(id=name) for name in front.models_for(caller)])
    return web.Response(body=encode(models), content_type=JSON)


async def retrieve_model(request: web.Request) -> web.Response:
    """`client.models.retrieve(id)`: a listed name, or any name a wildcard group serves."""
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    model = request.match_info["model"]
    try:
        front.resolve_group(model, caller)
    except ModelNotFound:
        shown = model[:MAX_ECHOED_MODEL]
        raise ModelNotFound(
            f"model `{shown}` is not served here; GET /v1/models lists the models",
            param="model",
            code="model_not_found",
        ) from None
    return web.Response(body=encode(ModelCard(id=model)), content_type=JSON)


async def model_info(request: web.Request) -> web.Response:
    """LiteLLM's deployment list; `?litellm_model_id=` narrows it to one deployment."""
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    wanted = request.query.get("litellm_model_id")
    data = [
        entry
        for entry in front.model_info
        if caller.may_list(entry["model_name"])
        and (wanted is None or entry["model_info"]["id"] == wanted)
    ]
    # Ours beside LiteLLM's `data`: how each of those groups is routed (issue #21).
    groups = list(dict.fromkeys(entry["model_name"] for entry in data))
    routing = describe_routing(front.config, groups)
    body = {"data": data, "model_groups": routing}
    return web.Response(body=msgspec.json.encode(body), content_type=JSON)
