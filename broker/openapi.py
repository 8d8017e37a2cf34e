"""The OpenAPI 3.1 document served at `GET /openapi.json`: every route of the API, the error
shape and the two ways to present a key. Request and response schemas are generated from the
msgspec Structs in `workers/wire.py` (the one definition of the wire model) and, for the
management API, from `broker/management/schemas.py`, never written by hand, so the document
cannot drift from what the front door decodes.

`tests/security/test_openapi.py` fails when a route is registered without an entry here, and
the fuzz test (`tests/security/test_fuzz.py`) generates its bodies from this document, so a new
endpoint is described and fuzzed, or the suite says so.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

import msgspec

from broker.batches.records import CreateBatch
from broker.console.openapi import console_paths
from broker.files.openapi import batch_paths, file_paths
from broker.frontdoor import LANE_HEADER
from broker.management.openapi import MANAGEMENT_BODIES, management_paths
from workers.ingress.messages_reply import AnthropicError
from workers.ingress.messages_request import MessagesRequest
from workers.ingress.responses_request import ResponsesRequest
from workers.params import GatewayOptions
from workers.providers.passthrough import PROVIDERS as PASSTHROUGH_PROVIDERS
from workers.text_completions import CompletionRequest, TextCompletion
from workers.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
    ErrorBody,
    ModelCard,
    ModelList,
)

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{name}"
STRUCTS = (
    ChatCompletionRequest,
    EmbeddingRequest,
    CompletionRequest,
    GatewayOptions,
    ChatCompletion,
    TextCompletion,
    ChatCompletionChunk,
    EmbeddingResponse,
    ModelCard,
    ModelList,
    ErrorBody,
    MessagesRequest,
    AnthropicError,
    ResponsesRequest,
    *MANAGEMENT_BODIES,
    CreateBatch,
)

# Either header carries the master key or a listed API key (broker/auth.py). A gateway with
# no key configured is open; the document describes the keyed case.
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <key>`: the master key or a listed API key.",
    },
    "apiKeyAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The same key in `x-api-key`, as Anthropic's clients send it.",
    },
}
KEYED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKeyAuth": []}]
PUBLIC: list[dict[str, list[str]]] = []

# Every error the gateway sends has this shape and one of these statuses (workers/errors.py).
ERROR_STATUSES = {
    "400": "Invalid request: the message names the field (`param`).",
    "401": "Missing or invalid API key.",
    "403": "The key may not call this model.",
    "404": "Unknown model, route or stream.",
    "405": "Method not allowed on this route.",
    "408": "The upstream provider timed out the request.",
    "409": "The batch cannot be cancelled (it already ended).",
    "413": "The request body is larger than the gateway accepts.",
    "415": "The body is not `application/json`.",
    "429": "Rate limited, over budget, or the queue is full (see `Retry-After`).",
    "500": "An internal error in the gateway or the provider.",
    "502": "The upstream provider failed or could not be reached.",
    "503": "The service or the provider is overloaded or unavailable.",
    "504": "The request's deadline passed.",
}
# What each kind of route can answer besides success.
INFERENCE_ERRORS = tuple(ERROR_STATUSES)
READ_ERRORS = ("400", "401", "404", "405", "500")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _responses(ok: dict[str, Any], errors: tuple[str, ...]) -> dict[str, Any]:
    return {
        **ok,
        **{status: {"$ref": f"#/components/responses/Error{status}"} for status in errors},
    }


def _body(struct_name: str) -> dict[str, Any]:
    # The body is the OpenAI request plus the gateway's own options (LiteLLM's proxy accepts
    # both in one object); unknown fields are allowed and forwarded to OpenAI-family hosts.
    schema = {"allOf": [_ref(struct_name), _ref("GatewayOptions")]}
    return {"required": True, "content": _json(schema)}


LANE_PARAMETER = {
    "name": LANE_HEADER,
    "in": "header",
    "required": False,
    "description": "The queue lane (switchboard_settings.lanes) to enqueue in.",
    "schema": {"type": "string"},
}
SSE = {"text/event-stream": {"schema": {"type": "string"}}}
MODEL_PARAMETER = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
MODEL_ID_PARAMETER = {"name": "litellm_model_id", "in": "query", "schema": {"type": "string"}}


def _inference(summary: str, request: str, reply: str, *, streams: bool, op: str) -> Any:
    content = _json(_ref(reply))
    if streams:
        # Each event's data is a ChatCompletionChunk, the last one `[DONE]`.
        content = {**content, **SSE}
    return {
        "post": {
            "operationId": op,
            "summary": summary,
            "parameters": [LANE_PARAMETER],
            "requestBody": _body(request),
            "responses": _responses(
                {"200": {"description": summary, "content": content}}, INFERENCE_ERRORS
            ),
        }
    }


def _anthropic(summary: str, *, streams: bool, op: str) -> Any:
    """An Anthropic Messages operation: its body, its reply (an Anthropic `message`, or its
    events), its errors in Anthropic's shape."""
    content = _json({"type": "object"})
    if streams:
        content = {**content, **SSE}
    errors = {
        status: {"description": description, "content": _json(_ref("AnthropicError"))}
        for status, description in ERROR_STATUSES.items()
    }
    return {
        "post": {
            "operationId": op,
            "summary": summary,
            "parameters": [
                LANE_PARAMETER,
                {"name": "anthropic-version", "in": "header", "schema": {"type": "string"}},
                {"name": "anthropic-beta", "in": "header", "schema": {"type": "string"}},
            ],
            "requestBody": _body("MessagesRequest"),
            "responses": {"200": {"description": summary, "content": content}, **errors},
        }
    }


RESPONSE_ID: dict[str, Any] = {
    "name": "response_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
}


def _responses_paths() -> dict[str, Any]:
    """The Responses API (issue #18): create, and the stored responses' read, delete and
    (a native background response's) cancel."""
    stored = _json({"type": "object"})
    create = _inference(
        "Create a model response, for any deployment (SSE with `stream: true`)",
        "ResponsesRequest",
        "ResponsesRequest",
        streams=True,
        op="createResponse",
    )
    create["post"]["responses"]["200"]["content"] = {**stored, **SSE}
    one = _get("getResponse", "A stored response", stored, parameters=[RESPONSE_ID])
    deleted = _get("deleteResponse", "Delete a stored response", stored, parameters=[RESPONSE_ID])
    cancel = _get(
        "cancelResponse",
        "Cancel a background response (one a native deployment runs)",
        stored,
        parameters=[RESPONSE_ID],
    )
    page = [
        RESPONSE_ID,
        {"name": "order", "in": "query", "schema": {"enum": ["asc", "desc"]}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
        {"name": "after", "in": "query", "schema": {"type": "string"}},
    ]
    return {
        "/v1/responses": create,
        "/v1/responses/{response_id}": {**one, "delete": deleted["get"]},
        "/v1/responses/{response_id}/input_items": _get(
            "listInputItems", "A stored response's input items", stored, parameters=page
        ),
        "/v1/responses/{response_id}/cancel": {"post": cancel["get"]},
    }


def _passthrough_paths() -> dict[str, Any]:
    """Provider pass-through (issue #18): any path under a configured provider's API."""
    path = {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
    relayed: dict[str, Any] = {"*/*": {"schema": {}}}
    paths: dict[str, Any] = {}
    for name in PASSTHROUGH_PROVIDERS:
        summary = f"Forward to the configured {name} deployment's API, answer unchanged"
        title = name.capitalize()
        operations: dict[str, Any] = {}
        for method in ("get", "post", "delete"):
            operation: dict[str, Any] = {
                "operationId": f"{method}{title}PassThrough",
                "summary": summary,
                "parameters": [path],
                "responses": _responses(
                    {"200": {"description": summary, "content": relayed}}, READ_ERRORS
                ),
            }
            if method == "post":
                # The provider's own body; the gateway reads nothing of it but its size.
                body = {"type": "object", "properties": {"model": {"type": "string"}}}
                operation["requestBody"] = {"content": _json(body)}
            operations[method] = operation
        paths[f"/{name}/{{path}}"] = operations
    return paths


def _get(
    op: str,
    summary: str,
    content: dict[str, Any],
    *,
    errors: tuple[str, ...] = READ_ERRORS,
    security: list[dict[str, list[str]]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op,
        "summary": summary,
        "responses": _responses({"200": {"description": summary, "content": content}}, errors),
    }
    if security is not None:
        operation["security"] = security
    if parameters:
        operation["parameters"] = parameters
    if extra:
        operation["responses"].update(extra)
    return {"get": operation}


def _paths() -> dict[str, Any]:
    chat = "Create a chat completion (JSON, or SSE with `stream: true`)"
    embed = "Create embeddings"
    legacy = "Create a legacy text completion (JSON, or SSE with `stream: true`)"
    models = "The model groups this key may call"
    info = (
        "LiteLLM's deployment list: model_name, litellm_params (no secrets), model_info; "
        "and model_groups: how each group is routed (strategy, retries, cooldown, fallbacks)"
    )
    health_body = _json({"type": "object"})
    return {
        "/v1/chat/completions": _inference(
            chat, "ChatCompletionRequest", "ChatCompletion", streams=True, op="createChatCompletion"
        ),
        "/chat/completions": _inference(
            chat,
            "ChatCompletionRequest",
            "ChatCompletion",
            streams=True,
            op="createChatCompletion2",
        ),
        "/v1/completions": _inference(
            legacy, "CompletionRequest", "TextCompletion", streams=True, op="createCompletion"
        ),
        "/completions": _inference(
            legacy, "CompletionRequest", "TextCompletion", streams=True, op="createCompletion2"
        ),
        "/v1/messages": _anthropic(
            "Create an Anthropic message, for any deployment (SSE with `stream: true`)",
            streams=True,
            op="createMessage",
        ),
        "/v1/messages/count_tokens": _anthropic(
            "Count a message's input tokens (the gateway's estimate)",
            streams=False,
            op="countMessageTokens",
        ),
        "/v1/embeddings": _inference(
            embed, "EmbeddingRequest", "EmbeddingResponse", streams=False, op="createEmbedding"
        ),
        "/embeddings": _inference(
            embed, "EmbeddingRequest", "EmbeddingResponse", streams=False, op="createEmbedding2"
        ),
        "/v1/models": _get("listModels", models, _json(_ref("ModelList"))),
        "/models": _get("listModels2", models, _json(_ref("ModelList"))),
        "/v1/models/{model}": _get(
            "retrieveModel",
            "One model this key may call",
            _json(_ref("ModelCard")),
            parameters=[MODEL_PARAMETER],
        ),
        "/models/{model}": _get(
            "retrieveModel2",
            "One model this key may call",
            _json(_ref("ModelCard")),
            parameters=[MODEL_PARAMETER],
        ),
        "/model/info": _get(
            "modelInfo", info, _json({"type": "object"}), parameters=[MODEL_ID_PARAMETER]
        ),
        "/v1/model/info": _get(
            "modelInfo2", info, _json({"type": "object"}), parameters=[MODEL_ID_PARAMETER]
        ),
        "/v1/streams/{request_id}": _get(
            "resumeStream",
            "Replay a reply's events after `Last-Event-ID` (or `after`), then follow it live",
            SSE,
            parameters=[
                {
                    "name": "request_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
                {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}},
                {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            ],
        ),
        "/health/liveliness": _get(
            "liveliness", "The process answers", health_body, errors=(), security=PUBLIC
        ),
        "/health/liveness": _get(
            "liveness", "The process answers", health_body, errors=(), security=PUBLIC
        ),
        "/health/readiness": _get(
            "readiness",
            "Ready to take requests (503 when not)",
            health_body,
            errors=(),
            security=PUBLIC,
            parameters=[
                {"name": "workers", "in": "query", "schema": {"enum": ["optional"]}},
            ],
            extra={"503": {"description": "Not ready", "content": health_body}},
        ),
        "/metrics": _get(
            "metrics",
            "Prometheus metrics of this process (text exposition format)",
            {"text/plain": {"schema": {"type": "string"}}},
            errors=("401", "403"),
            # The master key or switchboard_settings.metrics_key; anonymous only with
            # public_metrics (or an open gateway).
            security=[*KEYED, {}],
        ),
        "/openapi.json": _get(
            "openapi", "This document", _json({"type": "object"}), errors=(), security=PUBLIC
        ),
        **console_paths(),  # the console's routes (issue #21), cookie-authenticated
    }


def build_document() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(STRUCTS, ref_template=REF)
    error = {"description": "", "content": _json(_ref("ErrorBody"))}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Switchboard",
            "version": _version(),
            "description": "An OpenAI-compatible LLM gateway. Every error is "
            '`{"error": {"message", "type", "param", "code"}}`.',
        },
        "paths": {
            **_paths(),
            **_responses_paths(),
            **_passthrough_paths(),
            **management_paths(),
            **file_paths(),
            **batch_paths(),
        },
        "components": {
            "schemas": schemas,
            "responses": {
                f"Error{status}": {**error, "description": description}
                for status, description in ERROR_STATUSES.items()
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
        "security": KEYED,
    }


# The distribution's name (pyproject.toml); the import name is `switchboard`.
DISTRIBUTION = "switchboard-gateway"


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"  # run from a source tree that was never installed


@functools.cache
def openapi_json() -> bytes:
    """The document's bytes, built on first use: it depends on the code alone, not on config,
    so it names no model group, key alias or address."""
    return msgspec.json.encode(build_document())
