"""The one place an error becomes an HTTP response: `{"error": {message, type, param, code}}`
with the status the error carries (and Retry-After when it has one). After the first SSE
byte a status can no longer change; `broker.sse` then sends the same body as an event."""

from __future__ import annotations

import logging
import math

from aiohttp import web
from aiohttp.typedefs import Handler

from workers.errors import InternalError, SwitchboardError
from workers.wire import encode

log = logging.getLogger("switchboard.http")

JSON = "application/json"


def retry_after_header(retry_after_s: float | None) -> dict[str, str]:
    # Whole seconds, at least 1: the header's delta-seconds form has no fractions.
    if retry_after_s is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(retry_after_s)))}


def error_response(error: SwitchboardError, *, request_id: str | None = None) -> web.Response:
    headers = retry_after_header(error.retry_after_s)
    if request_id:
        headers["x-request-id"] = request_id
    return web.Response(
        body=encode(error.to_body()), status=error.http_status, content_type=JSON, headers=headers
    )


def response_for_status(
    status: int, body: bytes, *, headers: dict[str, str], retry_after_s: float | None = None
) -> web.Response:
    """An error a worker already rendered (its body is the OpenAI error JSON)."""
    return web.Response(
        body=body,
        status=status,
        content_type=JSON,
        headers={**headers, **retry_after_header(retry_after_s)},
    )


_HTTP_TYPES = {
    404: ("not_found_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SwitchboardError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        # aiohttp's own refusals (unknown route, body too large) in the OpenAI shape too.
        if exc.status < 400:
            raise
        error_type, code = _HTTP_TYPES.get(exc.status, ("invalid_request_error", None))
        body = {"error": {"message": exc.reason, "type": error_type, "param": None, "code": code}}
        headers = {k: v for k, v in exc.headers.items() if k.lower() != "content-type"}
        return web.json_response(body, status=exc.status, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalError("internal error in the gateway"))
