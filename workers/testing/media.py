"""Media a test names by http URL: `GET /media/pixel.png`, a 1x1 PNG.

Gemini and Bedrock take only inline bytes, so their adapters fetch an image_url themselves;
this gives them a local URL to fetch. It is on loopback, which media fetches reach only when
allowed (`switchboard_settings.media_fetch.allow_networks: [127.0.0.1/32]`). Not recorded
with the provider requests: it is the gateway fetching media, not a call to a provider.
"""

from __future__ import annotations

import base64

from aiohttp import web

from workers.testing.state import FakeState

PIXEL_PATH = "/media/pixel.png"
PIXEL_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5Er"
    "kJggg=="
)
PIXEL_PNG = base64.b64decode(PIXEL_PNG_BASE64)


def routes(state: FakeState) -> list[web.RouteDef]:
    async def pixel(request: web.Request) -> web.Response:
        return web.Response(body=PIXEL_PNG, content_type="image/png")

    return [web.get(PIXEL_PATH, pixel)]
