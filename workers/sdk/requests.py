"""What an SDK call sends: its keyword arguments as a request body, and that body as a
validated call, refused with the same 400s the front door gives (`workers/validation.py`).
Shared by the module-level calls (`calls.py`) and the Router (`router.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from workers.body_limits import MAX_DEPTH, check_json_object
from workers.errors import InvalidRequest
from workers.params import (
    CONSUMED_FIELDS,
    GATEWAY_FIELDS,
    GatewayOptions,
    validate_gateway_options,
)
from workers.providers.base import ChatCall, EmbeddingCall
from workers.providers.media import DEFAULT_POLICY, MediaFetches, MediaPolicy
from workers.routing.tags import request_tags
from workers.settings.switchboard import MediaFetch
from workers.validation import decode_request, validate_chat_request, validate_embedding_request
from workers.wire import chat_request_from_dict, embedding_request_from_dict


def request_body(params: dict[str, Any], extra_body: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON object a call's request parameters and `extra_body` make (None values
    left out), under the limits the front door puts on a body's bytes."""
    refused = sorted(set(params) & (GATEWAY_FIELDS - CONSUMED_FIELDS))
    if refused:
        raise InvalidRequest(
            f"`{refused[0]}` is not supported by the in-process SDK call",
            param=refused[0],
        )
    given = {k: v for k, v in params.items() if v is not None}
    extra = dict(extra_body or {})
    # The limits the front door puts on a body's bytes (workers/body_limits.py), before
    # anything recursive reads the arguments.
    check_json_object(given)
    check_json_object(extra)
    try:
        body: dict[str, Any] = _to_builtins(given)
        body.update(_to_builtins(extra))
    except RecursionError:
        # Nesting hidden inside objects (pydantic models): msgspec stops at its own limit.
        raise InvalidRequest(
            f"the request is nested more than {MAX_DEPTH} levels deep", code="invalid_value"
        ) from None
    return body


def _to_builtins(value: Any) -> Any:
    """Request parts as JSON-ready builtins; accepts our Structs and pydantic objects."""

    def enc_hook(obj: Any) -> Any:
        dump = getattr(obj, "model_dump", None)
        if dump is not None:
            return dump()
        raise TypeError(f"cannot send a {type(obj).__name__} to a provider")

    return msgspec.to_builtins(value, enc_hook=enc_hook)


def check_options(timeout: float | None, num_retries: int | None) -> None:
    """The bounds the front door puts on a body's `timeout` and `num_retries`."""
    validate_gateway_options(GatewayOptions(timeout=timeout, num_retries=num_retries))


def chat_call(
    body: dict[str, Any],
    *,
    drop_params: bool,
    media: MediaPolicy,
    timeout_s: float | None = None,
) -> ChatCall:
    """The body as a validated chat call (a 400 naming the parameter if it is not one)."""
    request = decode_request(chat_request_from_dict, body)
    validate_chat_request(request)
    mock_response = body.get("mock_response")
    return ChatCall(
        request=request,
        body=_forwarded(body),
        mock_response=mock_response if isinstance(mock_response, str) else None,
        tags=request_tags(body.get("tags"), body.get("metadata")),
        drop_params=drop_params,
        timeout_s=timeout_s,
        media=MediaFetches(media),
    )


def embedding_call(
    body: dict[str, Any], *, drop_params: bool, timeout_s: float | None = None
) -> EmbeddingCall:
    """The body as a validated embedding call (a 400 naming the parameter if it is not one)."""
    request = decode_request(embedding_request_from_dict, body)
    validate_embedding_request(request)
    return EmbeddingCall(
        request=request, body=_forwarded(body), drop_params=drop_params, timeout_s=timeout_s
    )


def _forwarded(body: dict[str, Any]) -> dict[str, Any]:
    """The body without the fields LiteLLM consumes (workers.params.CONSUMED_FIELDS)."""
    if CONSUMED_FIELDS.isdisjoint(body):
        return body
    return {k: v for k, v in body.items() if k not in CONSUMED_FIELDS}


def media_policy(media_fetch: MediaFetch | Mapping[str, Any] | None) -> MediaPolicy:
    """The media policy of an SDK call or Router: the default, or `media_fetch`'s."""
    if media_fetch is None:
        return DEFAULT_POLICY
    if not isinstance(media_fetch, MediaFetch):
        try:
            media_fetch = msgspec.convert(dict(media_fetch), MediaFetch)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"invalid media_fetch: {exc}", param="media_fetch") from exc
    return MediaPolicy.of(media_fetch)
