"""GET /openapi.json: the API's OpenAPI 3.1 document (broker/openapi.py). It depends on the
code alone, so it needs no key and names nothing from the config."""

from __future__ import annotations

from aiohttp import web

from broker.errors import JSON
from broker.openapi import openapi_json


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=openapi_json(), content_type=JSON)
