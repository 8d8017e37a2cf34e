"""OpenAI's Responses API read natively (issue #18): a /v1/responses request to an OpenAI or
Azure deployment is sent to the deployment's own `/responses` endpoint and its reply relayed
unchanged. This module reads that reply into the chat wire model on the side — the text, the
finish and above all the usage — so routing, cost, budgets and metrics count it exactly as a
chat call (one counting path), while the client gets the provider's bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from workers.deployment import Deployment
from workers.errors import ProviderError, SwitchboardError
from workers.http import describe_body
from workers.providers.sse_reader import SSEEvent
from workers.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
    assistant_message,
    make_usage,
    new_chunk,
)

# The hosts that serve OpenAI's Responses API themselves; any other gets the translation.
NATIVE_PROVIDERS = frozenset({"openai", "azure"})


# Azure serves Responses from this API version on (and on its /openai/v1 surface).
AZURE_RESPONSES_FROM = "2025-03-01"
# `responses_api` values that keep a deployment on the translation (`chat` is the old name).
TRANSLATE = frozenset({"translate", "chat"})


def serves_natively(deployment: Deployment) -> bool:
    """Whether /v1/responses goes to this deployment's own `/responses`: OpenAI's always,
    Azure's when its api-version (or surface) has Responses; `responses_api: native` or
    `translate` overrides. A native reply's id is the provider's: the gateway records whose
    it is and which deployment holds it (workers/ingress/response_store.py)."""
    chosen = deployment.options.get("responses_api")
    if deployment.provider not in NATIVE_PROVIDERS or chosen in TRANSLATE:
        return False
    if chosen == "native" or deployment.provider == "openai":
        return True
    version = deployment.api_version or ""
    on_v1 = (deployment.api_base or "").rstrip("/").endswith("/openai/v1")
    return on_v1 or version in ("preview", "latest") or version[:10] >= AZURE_RESPONSES_FROM


# The events that end a Responses stream, and the chat finish reason each stands for.
_TERMINAL = {
    b"response.completed": "stop",
    b"response.incomplete": "length",
    b"response.failed": "stop",
}


def usage_of(response: Mapping[str, Any]) -> Usage | None:
    """A Responses `usage` in the hub's form (input counts include cached tokens, output
    counts include reasoning, as OpenAI counts them both)."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    input_details = usage.get("input_tokens_details") or {}
    output_details = usage.get("output_tokens_details") or {}
    return make_usage(
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        cached_tokens=int(input_details.get("cached_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0),
    )


def output_text(response: Mapping[str, Any]) -> str:
    """The text of the response's message items."""
    texts = [
        part.get("text") or ""
        for item in response.get("output") or ()
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or ()
        if isinstance(part, dict) and part.get("type") == "output_text"
    ]
    return "".join(texts)


def _finish(response: Mapping[str, Any]) -> str:
    return "length" if response.get("status") == "incomplete" else "stop"


def parse_response(raw: bytes, *, provider: str, model: str) -> ChatCompletion:
    """A whole Responses body as a chat completion (its usage counts), with the body itself
    kept as `native_body`, which the client is sent unchanged."""
    try:
        response = orjson.loads(raw)
    except orjson.JSONDecodeError:
        response = None
    if not isinstance(response, dict) or response.get("object") != "response":
        raise ProviderError(
            f"{provider} sent a body that is not a response: {describe_body(raw)}",
            provider=provider,
            model=model,
        )
    completion = ChatCompletion(
        id=str(response.get("id") or ""),
        created=int(response.get("created_at") or time.time()),
        model=str(response.get("model") or model),
        choices=[
            Choice(
                message=assistant_message(output_text(response)), finish_reason=_finish(response)
            )
        ],
        usage=usage_of(response),
    )
    completion.native_body = raw  # type: ignore[attr-defined]  # a dict=True Struct
    return completion


class EventReader:
    """A Responses SSE stream as chat chunks: text deltas as content, the terminal event as
    the finish and the usage chunk (which comes last, by the adapter contract); an `error`
    event is the provider's failure."""

    __slots__ = ("provider", "model", "stream_error", "done", "id", "created")

    def __init__(
        self,
        provider: str,
        model: str,
        stream_error: Callable[[Mapping[str, Any]], SwitchboardError],
    ) -> None:
        self.provider = provider
        self.model = model
        self.stream_error = stream_error
        self.done = False
        self.id = ""
        self.created = int(time.time())

    def read(self, events: list[SSEEvent]) -> list[ChatCompletionChunk]:
        batch: list[ChatCompletionChunk] = []
        for event in events:
            kind = event.event
            if kind == b"response.output_text.delta":
                delta = self._field(event, "delta")
                if isinstance(delta, str) and delta:
                    batch.append(self._chunk(Delta(content=delta)))
            elif kind in _TERMINAL:
                response = self._field(event, "response") or {}
                batch.append(self._chunk(Delta(), finish=_finish(response)))
                usage = usage_of(response) or make_usage(0, 0)
                batch.append(new_chunk(self.id, self.created, self.model, [], usage))
                self.done = True
                return batch
            elif kind == b"error":
                payload = self._load(event)
                raise self.stream_error(payload.get("error") or payload)
            elif kind == b"response.created":
                response = self._field(event, "response") or {}
                self.id = str(response.get("id") or "")
        return batch

    def finish(self) -> list[ChatCompletionChunk]:
        """The body ended without a terminal event: a failure."""
        raise ProviderError(
            f"{self.provider} ended the stream before it finished",
            provider=self.provider,
            model=self.model,
        )

    def _chunk(self, delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
        choice = ChunkChoice(delta=delta, finish_reason=finish)
        return new_chunk(self.id, self.created, self.model, [choice])

    def _load(self, event: SSEEvent) -> dict[str, Any]:
        try:
            payload = orjson.loads(event.data)
        except orjson.JSONDecodeError as exc:
            raise ProviderError(
                f"{self.provider} sent a stream event that is not JSON: "
                f"{describe_body(event.data)}",
                provider=self.provider,
                model=self.model,
            ) from exc
        if not isinstance(payload, dict):
            raise ProviderError(
                f"{self.provider} sent a stream event that is not an object",
                provider=self.provider,
                model=self.model,
            )
        return payload

    def _field(self, event: SSEEvent, name: str) -> Any:
        return self._load(event).get(name)
