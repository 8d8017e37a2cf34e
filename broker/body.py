"""Reading and validating a request body once: content type, size, nesting and numbers,
JSON, schema. Every failure is an OpenAI-style 4xx naming what was wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import orjson
from aiohttp import web

from broker.config.loader import Config
from workers.body_limits import check_json_bytes
from workers.errors import InvalidRequest, RequestTooLarge
from workers.params import (
    GatewayOptions,
    capped,
    decode_gateway_options,
    validate_gateway_options,
)

T = TypeVar("T")


class UnsupportedMediaType(InvalidRequest):
    status = 415
    default_code = "unsupported_media_type"


async def read_json_body(request: web.Request, max_bytes: int) -> bytes:
    content_type = request.content_type
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"expected `Content-Type: application/json`, got `{content_type or 'none'}`",
            param="Content-Type",
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(max_bytes) from None
    except web.RequestPayloadError:
        # aiohttp decodes a `Content-Encoding` body as it reads; a body that is not what
        # its header says (gzip that is not gzip) fails there, the client's fault.
        raise InvalidRequest(
            "the request body could not be read: it does not match its `Content-Encoding` header",
            param="Content-Encoding",
            code="invalid_content_encoding",
        ) from None
    if not body:
        raise InvalidRequest("the request body is empty; send a JSON object", code="invalid_json")
    # Before any decoder sees it: nesting that would exhaust a recursive one, numbers that
    # would overflow one downstream (issue #13, item 5).
    check_json_bytes(body)
    return body


def _too_large(max_bytes: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"the request body is larger than the {max_bytes} bytes this gateway accepts"
    )


def decode(decoder: Callable[[bytes], T], body: bytes) -> T:
    """Decode with a module-level msgspec decoder, turning its errors into 400s."""
    try:
        return decoder(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(_message(exc), param=_param(exc), code="invalid_value") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from None


def json_object(body: bytes) -> dict[str, Any]:
    """A body already decoded once (`decode`) as a plain object. orjson refuses a little that
    msgspec takes (integers past 64 bits, for one): that is the client's 400 as well."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(raw, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    return raw


def gateway_options(body: bytes, *, max_timeout_s: float, max_num_retries: int) -> GatewayOptions:
    """The body's gateway options, refused when absurd and capped by the operator's limits."""
    options = decode(decode_gateway_options, body)
    validate_gateway_options(options)
    return capped(options, timeout_s=max_timeout_s, num_retries=max_num_retries)


def max_num_retries(config: Config) -> int:
    """The most retries a request body may ask for (more is capped to this)."""
    configured = config.switchboard_settings.max_num_retries
    if configured is not None:
        return configured
    return config.router_settings.num_retries or 0


def _param(exc: msgspec.ValidationError) -> str | None:
    text = str(exc)
    if " - at `$." in text:
        return text.rsplit(" - at `$.", 1)[1].rstrip("`")
    if "missing required field `" in text:
        return text.split("missing required field `", 1)[1].rstrip("`")
    return None


def _message(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    param = _param(exc)
    if " - at `$." in text:
        text = text.rsplit(" - at `$.", 1)[0]
    if text.startswith("Object missing required field"):
        return f"`{param}` is required"
    return f"invalid `{param}`: {text}" if param else f"invalid request: {text}"
