"""The endpoints a batch's lines may name, each line's body checked as that endpoint's
front door checks it (issues #18, #20): Chat Completions, Embeddings, Anthropic's
Messages and OpenAI's Responses. Each says how its lines are queued (kind, ingress) and
what admission reads of them (model, max tokens, end user)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from broker.body import decode
from workers.envelopes import (
    INGRESS_CHAT,
    INGRESS_MESSAGES,
    INGRESS_RESPONSES,
    KIND_CHAT,
    KIND_EMBEDDING,
)
from workers.errors import InvalidRequest
from workers.ingress.messages_request import decode_messages_request, to_chat_body
from workers.ingress.responses_request import Translator, decode_responses_request
from workers.params import GATEWAY_FIELDS
from workers.validation import (
    RequestLimits,
    decode_request,
    validate_chat_request,
    validate_embedding_request,
)
from workers.wire import chat_request_from_dict, decode_chat_request, decode_embedding_request

NO_STREAM = "a batch line cannot stream: drop `stream`"


class Request(msgspec.Struct, frozen=True):
    """What admission needs of a line's body (broker/tenancy.py's ticket)."""

    model: str
    max_tokens: int | None = None
    end_user: str | None = None


class Endpoint(msgspec.Struct, frozen=True):
    kind: int
    call_type: str  # as the spend ledger names it
    check: Callable[[bytes, RequestLimits], Request]  # raises on a bad body
    ingress: int = INGRESS_CHAT  # the reply's shape (workers/ingress/)


def _check_chat(body: bytes, limits: RequestLimits) -> Request:
    chat = decode(decode_chat_request, body)
    validate_chat_request(chat, limits)
    if chat.is_stream:
        raise InvalidRequest(NO_STREAM, param="stream")
    return Request(chat.model, chat.max_completion_tokens or chat.max_tokens, chat.user)


def _check_embedding(body: bytes, limits: RequestLimits) -> Request:
    embedding = decode(decode_embedding_request, body)
    validate_embedding_request(embedding, limits)
    return Request(embedding.model, None, embedding.user)


def _raw(body: bytes) -> tuple[dict[str, Any], bool]:
    """The body without the gateway's own fields, and its drop_params."""
    raw: dict[str, Any] = orjson.loads(body)
    drop = bool(raw.get("drop_params"))
    for name in GATEWAY_FIELDS:
        raw.pop(name, None)
    return raw, drop


def _check_messages(body: bytes, limits: RequestLimits) -> Request:
    parsed = decode(decode_messages_request, body)
    if parsed.max_tokens is None:
        raise InvalidRequest("`max_tokens` is required", param="max_tokens")
    if parsed.stream:
        raise InvalidRequest(NO_STREAM, param="stream")
    raw, drop = _raw(body)
    chat_body = decode_request(lambda b: to_chat_body(b, drop_params=drop), raw)
    validate_chat_request(decode_request(chat_request_from_dict, chat_body), limits)
    user = (parsed.metadata or {}).get("user_id")
    return Request(parsed.model, parsed.max_tokens, user if isinstance(user, str) else None)


def _check_responses(body: bytes, limits: RequestLimits) -> Request:
    parsed = decode(decode_responses_request, body)
    if parsed.stream:
        raise InvalidRequest(NO_STREAM, param="stream")
    raw, drop = _raw(body)
    translator = Translator(drop_params=drop)
    chat_body = decode_request(lambda b: translator.chat_body(parsed, b, []), raw)
    if chat_body["messages"]:
        validate_chat_request(decode_request(chat_request_from_dict, chat_body), limits)
    elif not parsed.previous_response_id:
        raise InvalidRequest("`input` is required", param="input")
    return Request(parsed.model, parsed.max_output_tokens, parsed.user)


ENDPOINTS = {
    "/v1/chat/completions": Endpoint(KIND_CHAT, "chat.completions", _check_chat),
    "/v1/embeddings": Endpoint(KIND_EMBEDDING, "embeddings", _check_embedding),
    "/v1/messages": Endpoint(KIND_CHAT, "messages", _check_messages, INGRESS_MESSAGES),
    "/v1/responses": Endpoint(KIND_CHAT, "responses", _check_responses, INGRESS_RESPONSES),
}
