"""The one place an error becomes an HTTP response: `{"error": {message, type, param, code}}`
with the status the error carries (and Retry-After when it has one). After the first SSE
byte a status can no longer change; `broker.sse_frames` then sends the same body as an event."""

from __future__ import annotations

import logging
import math

import msgspec
import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from redis.exceptions import RedisError

from workers.errors import (
    InternalError,
    InvalidRequest,
    NotFound,
    RequestTooLarge,
    ServiceUnavailable,
    SwitchboardError,
)
from workers.wire import decode_error_body

log = logging.getLogger("switchboard.http")

JSON = "application/json"


def retry_after_header(retry_after_s: float | None) -> dict[str, str]:
    # Whole seconds, at least 1: the header's delta-seconds form has no fractions.
    if retry_after_s is None:
        return {}
    return {"Retry-After": str(max(1, math.ceil(retry_after_s)))}


def error_response(error: SwitchboardError, *, request_id: str | None = None) -> web.Response:
    headers = retry_after_header(error.retry_after_s)
    if error.headers:
        headers.update(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return web.Response(
        body=error.to_json(), status=error.http_status, content_type=JSON, headers=headers
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


# aiohttp's refusals as errors of the tree (workers/errors.py); any other 4xx is an
# InvalidRequest with that status and no code.
_HTTP_CODES = {405: "method_not_allowed", 415: "unsupported_media_type"}
# Echoed paths are cut to this many characters.
MAX_ECHOED_PATH = 200


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
        return http_error_response(request, exc)
    except RedisError as exc:
        # A Redis call no handler wrapped: the store is out of reach or full, not a bug in
        # the request; the client may retry (issue #13: no 5xx that says "internal").
        log.warning("Redis failed on %s %s: %s", request.method, request.path, exc)
        return error_response(
            ServiceUnavailable(
                "the gateway's store (Redis) is unavailable; retry shortly",
                code="queue_unavailable",
                retry_after_s=1.0,
            )
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalError("internal error in the gateway"))


def http_error_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    error = _http_error(exc.status, _http_message(request, exc))
    headers = {k: v for k, v in exc.headers.items() if k.lower() != "content-type"}
    return web.Response(
        body=error.to_json(), status=error.http_status, content_type=JSON, headers=headers
    )


def _http_error(status: int, message: str) -> SwitchboardError:
    if status == 404:
        return NotFound(message, code="not_found")
    if status == 413:
        return RequestTooLarge(message)
    return InvalidRequest(message, code=_HTTP_CODES.get(status), status=status)


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    path = _echo(request.path)
    if isinstance(exc, web.HTTPNotFound):
        served = ", ".join(served_paths(request.app))
        return f"Unknown path `{path}`; this gateway serves {served}"
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"`{_echo(request.method)} {path}` is not allowed; `{path}` accepts {allowed}"
    return exc.reason


def served_paths(app: web.Application) -> list[str]:
    """Every path the app routes, in the order they were added."""
    paths = (resource.canonical for resource in app.router.resources())
    return list(dict.fromkeys(paths))


def _echo(text: str) -> str:
    return text if len(text) <= MAX_ECHOED_PATH else text[:MAX_ECHOED_PATH] + "..."


# ------------------------------------------------------------------ Anthropic's shape (#18)

# Anthropic's error types by status (docs.claude.com "Errors"). A 4xx it does not list
# (a 422 budget refusal, ...) is `invalid_request_error`, which Anthropic says it also uses
# for "other 4XX status codes"; any other status is its generic server-side `api_error`.
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_type(status: int) -> str:
    fallback = "invalid_request_error" if 400 <= status < 500 else "api_error"
    return ANTHROPIC_TYPES.get(status, fallback)


def anthropic_error_json(status: int, message: str) -> bytes:
    """`{"type": "error", "error": {"type", "message"}}`, the body /v1/messages answers with."""
    detail = {"type": anthropic_type(status), "message": message}
    return orjson.dumps({"type": "error", "error": detail})


def anthropic_body(status: int, body: bytes) -> bytes:
    """A worker's OpenAI-shaped error body in Anthropic's shape."""
    try:
        message = decode_error_body(body).error.message
    except msgspec.DecodeError:
        message = body.decode(errors="replace")[:500]
    return anthropic_error_json(status, message)


def anthropic_error_event(status: int, body: bytes) -> bytes:
    """The same, as the in-stream `event: error` (pre-framed for broker/sse_frames.py)."""
    return b"event: error\ndata: " + anthropic_body(status, body)


def anthropic_error_response(
    error: SwitchboardError, *, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=anthropic_error_json(error.http_status, error.message),
        status=error.http_status,
        content_type=JSON,
        headers={**(headers or {}), **retry_after_header(error.retry_after_s)},
    )


def anthropic_errors(handler: Handler) -> Handler:
    """A /v1/messages handler whose failures answer in Anthropic's shape."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        response = await error_middleware(request, handler)
        if response.status < 400 or not isinstance(response, web.Response):
            return response
        body = response.body if isinstance(response.body, bytes) else b""
        if body.startswith(b'{"type":"error"'):
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
        headers.pop("Content-Length", None)
        return web.Response(
            body=anthropic_body(response.status, body),
            status=response.status,
            content_type=JSON,
            headers=headers,
        )

    return wrapped


ANTHROPIC_PATH = "/v1/messages"


def error_response_at(path: str, error: SwitchboardError) -> web.Response:
    """`error` in the shape the API at `path` answers with (for what reaches no handler)."""
    if path == ANTHROPIC_PATH or path.startswith(ANTHROPIC_PATH + "/"):
        return anthropic_error_response(error)
    return error_response(error)
