"""HTTP routes, one module per endpoint family."""

from __future__ import annotations

from aiohttp import web

from broker.routes import (
    chat,
    completions,
    embeddings,
    health,
    messages,
    metrics,
    models,
    responses,
    resume,
)
from broker.routes.openapi import openapi_document


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat.chat_completions)
    app.router.add_post("/chat/completions", chat.chat_completions)
    app.router.add_post("/v1/completions", completions.completions)
    app.router.add_post("/completions", completions.completions)
    app.router.add_post("/v1/messages", messages.messages)
    app.router.add_post("/v1/messages/count_tokens", messages.count_tokens)
    app.router.add_post("/v1/responses", responses.create_response)
    app.router.add_get("/v1/responses/{response_id}", responses.get_response)
    app.router.add_delete("/v1/responses/{response_id}", responses.delete_response)
    app.router.add_get("/v1/responses/{response_id}/input_items", responses.list_input_items)
    app.router.add_post("/v1/responses/{response_id}/cancel", responses.cancel_response)
    app.router.add_post("/v1/embeddings", embeddings.embeddings)
    app.router.add_post("/embeddings", embeddings.embeddings)
    app.router.add_get("/v1/models", models.list_models)
    app.router.add_get("/models", models.list_models)
    # Model ids may hold slashes (`anthropic/claude-haiku-4-5`).
    app.router.add_get("/v1/models/{model:.+}", models.retrieve_model)
    app.router.add_get("/models/{model:.+}", models.retrieve_model)
    app.router.add_get("/model/info", models.model_info)
    app.router.add_get("/v1/model/info", models.model_info)
    app.router.add_get("/v1/streams/{request_id}", resume.resume_stream)
    app.router.add_get("/health/liveliness", health.liveliness)
    app.router.add_get("/health/liveness", health.liveliness)
    app.router.add_get("/health/readiness", health.readiness)
    app.router.add_get("/metrics", metrics.metrics)
    app.router.add_get("/openapi.json", openapi_document)


def add_operator_routes(app: web.Application) -> None:
    """The metrics port's routes: metrics and health, never the API."""
    app.router.add_get("/metrics", metrics.metrics)
    app.router.add_get("/health/liveliness", health.liveliness)
    app.router.add_get("/health/liveness", health.liveliness)
    app.router.add_get("/health/readiness", health.readiness)
