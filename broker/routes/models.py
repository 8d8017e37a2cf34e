"""GET /v1/models: the model groups (and visible aliases) clients may ask for."""

from __future__ import annotations

from aiohttp import web

from broker.errors import JSON
from broker.routes.keys import FRONT_DOOR
from workers.wire import ModelCard, ModelList, encode


async def list_models(request: web.Request) -> web.Response:
    front = request.app[FRONT_DOOR]
    caller = front.auth.check(request)
    models = ModelList(data=[ModelCard(id=name) for name in front.models_for(caller)])
    return web.Response(body=encode(models), content_type=JSON)
