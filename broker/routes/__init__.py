"""HTTP routes, one module per endpoint family."""

from __future__ import annotations

from aiohttp import web

from broker.routes import chat, embeddings, health, metrics, models, resume
from broker.routes.openapi import openapi_document


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", chat.chat_completions)
    app.router.add_post("/chat/completions", chat.chat_completions)
    app.router.add_post("/v1/embeddings", embeddings.embeddings)
    app.router.add_post("/embeddings", embeddings.embeddings)
    app.router.add_get("/v1/models", models.list_models)
    app.router.add_get("/models", models.list_models)
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
