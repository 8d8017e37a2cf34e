"""/v1/messages/count_tokens for a group of Gemini deployments (issue #18): Gemini's own
counter, `models/{model}:countTokens`, rather than the gateway's estimate. The Messages
body is translated as a call to that deployment would be (workers/ingress/, then the Gemini
adapter's request: system instruction, contents and tools, media fetched under the media
policy) and counted whole; the answer is Anthropic's `{"input_tokens": n}`, flagged
`x-switchboard-token-count: provider`. Like Anthropic's counter it bypasses the queue."""

from __future__ import annotations

import orjson
from aiohttp import web

from broker.body import json_object
from broker.errors import JSON
from broker.frontdoor import FrontDoor
from broker.routes.passthrough import PASSTHROUGH_HTTP
from workers.deployment import Deployment
from workers.errors import SwitchboardError
from workers.ingress.messages_request import to_chat_body
from workers.params import GATEWAY_FIELDS
from workers.providers import create_adapter
from workers.providers.base import ChatCall
from workers.providers.gemini import GeminiAdapter
from workers.providers.media import MediaFetches
from workers.sdk.requests import media_policy
from workers.upstream_text import for_client
from workers.validation import decode_request
from workers.wire import chat_request_from_dict

COUNT_TIMEOUT_S = 30.0
COUNT_HEADER = "x-switchboard-token-count"


async def count_at_gemini(
    request: web.Request, front: FrontDoor, deployment: Deployment, body: bytes, *, drop: bool
) -> web.Response:
    raw = json_object(body)
    for name in GATEWAY_FIELDS:
        raw.pop(name, None)
    chat_body = decode_request(lambda b: to_chat_body(b, drop_params=drop), raw)
    chat = decode_request(chat_request_from_dict, chat_body)
    adapter = create_adapter(deployment, request.app[PASSTHROUGH_HTTP])
    assert isinstance(adapter, GeminiAdapter)  # the caller checked the provider
    call = ChatCall(
        request=chat,
        body=chat_body,
        timeout_s=COUNT_TIMEOUT_S,
        drop_params=drop,
        media=MediaFetches(media_policy(front.settings.media_fetch)),
    )
    try:
        tokens = await adapter.count_tokens(call)
    except SwitchboardError as exc:
        # Worded as any upstream failure is: never the provider's raw text or a secret.
        raise for_client(exc, deployment, "count_tokens") from None
    return web.Response(
        body=orjson.dumps({"input_tokens": tokens}),
        content_type=JSON,
        headers={COUNT_HEADER: "provider"},
    )
