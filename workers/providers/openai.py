"""OpenAI Chat Completions and Embeddings, and the base every OpenAI-family host builds on.

The request is forwarded as the caller sent it (unknown fields included: providers add fields
faster than any gateway), with only the model replaced, deployment defaults applied and
parameters the host cannot honor refused or dropped. Streams always ask the host for usage so
cost is known; the consumer strips the usage chunk when the client did not ask for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import aiohttp
import msgspec
import orjson

from workers.deployment import ProviderDefaults
from workers.errors import AuthenticationFailed, ProviderError, SwitchboardError
from workers.http import (
    describe_body,
    error_from_response,
    log_unreadable,
    timeout_for,
    transport_errors,
)
from workers.providers import openai_responses
from workers.providers.base import Adapter, ChatCall, EmbeddingCall, NativeBatch, NativeRequest
from workers.providers.sse_reader import iter_sse
from workers.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    EmbeddingResponse,
    decode_chat_completion,
    decode_chunk,
    decode_embedding_response,
    new_chunk,
)

# NativeRequest.provider of a /v1/responses body: every host that serves `/responses`.
RESPONSES = "openai-responses"
# o-series and gpt-5 reasoning models accept only `max_completion_tokens`.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


class OpenAIAdapter(Adapter):
    provider: ClassVar[str] = "openai"
    defaults: ClassVar[ProviderDefaults] = ProviderDefaults(
        api_base="https://api.openai.com/v1",
        api_base_env=("OPENAI_BASE_URL", "OPENAI_API_BASE"),
        api_key_env=("OPENAI_API_KEY",),
    )
    supports_embeddings: ClassVar[bool] = True
    # param -> why the host cannot honor it
    # OpenAI-compatible hosts (hosted_vllm/, groq/, ...) have their own list: vLLM takes top_k.
    refused_params: ClassVar[Mapping[str, str]] = {
        "thinking": "OpenAI models take `reasoning_effort` instead",
        "top_k": "OpenAI's chat completions have no top_k (use top_p)",
    }
    # OpenAI param -> the host's name for it
    renamed_params: ClassVar[Mapping[str, str]] = {}
    # Whether the host accepts `stream_options.include_usage` (usage on the last chunk).
    stream_usage: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base = self.deployment.api_base or self.defaults.api_base
        if not base:
            raise ProviderError(
                f"{self.provider} needs an api_base", provider=self.provider, model=self.model
            )
        self.base_url = base.rstrip("/")
        self.headers = {"Content-Type": "application/json", **self.auth_headers()}
        self.headers.update(self.deployment.extra_headers)
        self.missing_key = (
            self.defaults.requires_api_key
            and not self.deployment.api_key
            and not ("Authorization" in self.headers or "api-key" in self.headers)
        )

    # ------------------------------------------------------------------ per-host hooks

    def auth_headers(self) -> dict[str, str]:
        headers = {}
        if self.deployment.api_key:
            headers["Authorization"] = f"Bearer {self.deployment.api_key}"
        if self.deployment.organization:
            headers["OpenAI-Organization"] = self.deployment.organization
        return headers

    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def embeddings_url(self) -> str:
        return f"{self.base_url}/embeddings"

    def responses_url(self) -> str:
        return f"{self.base_url}/responses"

    def adapt_body(self, body: dict[str, Any], call: ChatCall) -> None:
        """Host-specific edits to the outgoing body (in place)."""
        if self.model.startswith(_REASONING_PREFIXES) and "max_tokens" in body:
            body.setdefault("max_completion_tokens", body.pop("max_tokens"))

    # ------------------------------------------------------------------ requests

    def check_credentials(self) -> None:
        if self.missing_key:
            names = " or ".join(self.defaults.api_key_env) or "api_key"
            raise AuthenticationFailed(
                f"no API key for {self.provider}: pass api_key or set {names}",
                provider=self.provider,
                model=self.model,
            )

    def chat_body(self, call: ChatCall, *, stream: bool) -> dict[str, Any]:
        self.check_credentials()
        body = {**self.deployment.default_params, **call.body}
        body["model"] = self.model
        for param in self.refuse_set(call, body, self.refused_params):
            del body[param]
        for ours, theirs in self.renamed_params.items():
            if ours in body:
                value = body.pop(ours)
                body.setdefault(theirs, value)
        self.adapt_body(body, call)
        if stream:
            body["stream"] = True
            if self.stream_usage:
                options = dict(body.get("stream_options") or {})
                options["include_usage"] = True
                body["stream_options"] = options
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    # ------------------------------------------------------------------ native Responses

    def _native(self, call: ChatCall) -> NativeRequest | None:
        native = call.native
        if native is None or native.provider != RESPONSES:
            return None
        return native if openai_responses.serves_natively(self.deployment) else None

    def responses_body(self, native: NativeRequest, *, stream: bool) -> bytes:
        """The client's Responses body as it sent it, the deployment's defaults under it and
        its model in place of the group's name."""
        self.check_credentials()
        body = {**self.deployment.default_params, **native.body, "model": self.model}
        if not stream:
            body.pop("stream", None)
        return self.encode_body(body)

    async def _native_response(self, native: NativeRequest, call: ChatCall) -> ChatCompletion:
        payload = self.responses_body(native, stream=False)
        timeout = timeout_for(self.timeout_s(call, stream=False), stream=False)
        with transport_errors(self.provider, self.model):
            async with self.http.session.post(
                self.responses_url(), data=payload, headers=self.headers, timeout=timeout
            ) as response:
                raw = await self.http.read_body(response, self.provider, self.model)
                if response.status >= 400:
                    raise self.error(response, raw)
        return openai_responses.parse_response(raw, provider=self.provider, model=self.model)

    async def _native_events(
        self, response: aiohttp.ClientResponse
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        """The translated chunks, each batch with the provider's own events behind it (the
        events that gave no chunk ride with the next batch)."""
        reader = openai_responses.EventReader(self.provider, self.model, self.stream_error)
        pending: list[bytes] = []
        async for events in iter_sse(self.http.iter_body(response, self.provider, self.model)):
            batch = reader.read(events)
            pending += [b"event: %s\ndata: %s" % (e.event or b"message", e.data) for e in events]
            if batch or reader.done:
                yield NativeBatch(batch, pending)
                pending = []
            if reader.done:
                return
        yield NativeBatch(reader.finish(), pending)

    # ------------------------------------------------------------------ chat

    async def chat(self, call: ChatCall) -> ChatCompletion:
        native = self._native(call)
        if native is not None:
            return await self._native_response(native, call)
        payload = self.encode_body(self.chat_body(call, stream=False))
        timeout = timeout_for(self.timeout_s(call, stream=False), stream=False)
        with transport_errors(self.provider, self.model):
            async with self.http.session.post(
                self.chat_url(), data=payload, headers=self.headers, timeout=timeout
            ) as response:
                raw = await self.http.read_body(response, self.provider, self.model)
                if response.status >= 400:
                    raise self.error(response, raw)
        try:
            return decode_chat_completion(raw)
        except msgspec.DecodeError as exc:  # not JSON, or JSON of another shape
            raise ProviderError(
                f"{self.provider} sent a response that is not a chat completion: {exc}; "
                f"body: {describe_body(raw)}",
                provider=self.provider,
                model=self.model,
            ) from exc

    async def stream(self, call: ChatCall) -> AsyncIterator[list[ChatCompletionChunk]]:
        native = self._native(call)
        if native is not None:
            url, payload = self.responses_url(), self.responses_body(native, stream=True)
        else:
            url, payload = self.chat_url(), self.encode_body(self.chat_body(call, stream=True))
        timeout = timeout_for(self.timeout_s(call, stream=True), stream=True)
        with transport_errors(self.provider, self.model):
            response = await self.http.session.post(
                url, data=payload, headers=self.headers, timeout=timeout
            )
            try:
                if response.status >= 400:
                    raise self.error(
                        response, await self.http.read_body(response, self.provider, self.model)
                    )
                batches = self._chunks(response)
                if native is not None:
                    batches = self._native_events(response)
                async for batch in batches:
                    yield batch
            finally:
                # Closing (not releasing) an unfinished response drops the connection, which
                # is how the upstream learns that nobody reads the rest.
                response.close()

    async def _chunks(
        self, response: aiohttp.ClientResponse
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        reader = _ChunkReader(self)
        async for events in iter_sse(self.http.iter_body(response, self.provider, self.model)):
            batch = reader.read(events)
            if batch:
                yield batch
            if reader.done:
                return
        tail = reader.finish()
        if tail:
            yield tail

    async def embed(self, call: EmbeddingCall) -> EmbeddingResponse:
        if not self.supports_embeddings:
            return await super().embed(call)
        self.check_credentials()
        body = {**call.body, "model": self.model}
        payload = self.encode_body(body)
        timeout = timeout_for(self.timeout_s(call, stream=False), stream=False)
        with transport_errors(self.provider, self.model):
            async with self.http.session.post(
                self.embeddings_url(), data=payload, headers=self.headers, timeout=timeout
            ) as response:
                raw = await self.http.read_body(response, self.provider, self.model)
                if response.status >= 400:
                    raise self.error(response, raw)
        try:
            return decode_embedding_response(raw)
        except msgspec.DecodeError as exc:  # not JSON, or JSON of another shape
            raise ProviderError(
                f"{self.provider} sent a response that is not an embedding list: {exc}; "
                f"body: {describe_body(raw)}",
                provider=self.provider,
                model=self.model,
            ) from exc

    # ------------------------------------------------------------------ errors

    def error(self, response: aiohttp.ClientResponse, raw: bytes) -> SwitchboardError:
        message, code, param = parse_error_body(raw)
        return error_from_response(
            response.status,
            response.headers,
            message or f"{self.provider} answered HTTP {response.status}",
            code=code,
            param=param,
            provider=self.provider,
            model=self.model,
        )

    def stream_error(self, error: Mapping[str, Any]) -> SwitchboardError:
        """An `{"error": {...}}` event after the stream started."""
        message = str(error.get("message") or "the provider failed mid-stream")
        code = error.get("code")
        status = 429 if error.get("type") in ("rate_limit_error", "tokens", "requests") else 502
        return error_from_response(
            status,
            {},
            message,
            code=str(code) if code is not None else None,
            param=error.get("param"),
            provider=self.provider,
            model=self.model,
        )


class _ChunkReader:
    """Turns SSE events into chunks under the stream contract of `providers.base`."""

    __slots__ = ("adapter", "done", "usage_chunk", "finished")

    def __init__(self, adapter: OpenAIAdapter) -> None:
        self.adapter = adapter
        self.done = False
        self.finished = False
        self.usage_chunk: ChatCompletionChunk | None = None

    def read(self, events: list[Any]) -> list[ChatCompletionChunk]:
        batch: list[ChatCompletionChunk] = []
        for event in events:
            data = event.data
            if data == b"[DONE]":
                self.done = True
                if self.usage_chunk is not None:
                    batch.append(self.usage_chunk)
                    self.usage_chunk = None
                break
            chunk = self._decode(data)
            if chunk is None:
                continue
            if chunk.usage is not None:
                # Usage goes last, on a chunk of its own (some hosts put it on a content chunk).
                usage_only = new_chunk(chunk.id, chunk.created, chunk.model, [], chunk.usage)
                self.usage_chunk = usage_only
                chunk.usage = None
            if not chunk.choices:
                # Azure's leading prompt-filter chunk: no choices, no usage, empty id.
                continue
            if any(choice.finish_reason for choice in chunk.choices):
                self.finished = True
            batch.append(chunk)
        return batch

    def finish(self) -> list[ChatCompletionChunk]:
        """The body ended without `[DONE]`: fine if a finish_reason was seen, else a failure."""
        if not self.finished:
            raise ProviderError(
                f"{self.adapter.provider} ended the stream before it finished",
                provider=self.adapter.provider,
                model=self.adapter.model,
            )
        tail = [self.usage_chunk] if self.usage_chunk is not None else []
        self.usage_chunk = None
        return tail

    def _decode(self, data: bytes) -> ChatCompletionChunk | None:
        try:
            return decode_chunk(data)
        except msgspec.DecodeError:
            pass
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ProviderError(
                f"{self.adapter.provider} sent a stream event that is not JSON: "
                f"{describe_body(data)}",
                provider=self.adapter.provider,
                model=self.adapter.model,
            ) from exc
        if isinstance(payload, dict) and payload.get("choices") == [] and not payload.get("usage"):
            # Azure's leading prompt-filter event: empty id, model and object, no choices.
            return None
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            raise self.adapter.stream_error(payload["error"])
        if isinstance(payload, dict) and payload.get("error"):
            raise self.adapter.stream_error({"message": str(payload["error"])})
        raise ProviderError(
            f"{self.adapter.provider} sent a stream event that is not a chunk: "
            f"{describe_body(data)}",
            provider=self.adapter.provider,
            model=self.adapter.model,
        )


def parse_error_body(raw: bytes) -> tuple[str | None, str | None, str | None]:
    """(message, code, param) from the error bodies OpenAI-family hosts send:
    `{"error": {...}}`, `{"error": "text"}`, `{"message": ...}`, FastAPI's `{"detail": ...}`."""
    # A body that is not one of these is logged, never quoted (workers/upstream_text.py).
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        log_unreadable(raw)
        return None, None, None
    error = payload.get("error", payload)
    if isinstance(error, str):
        return error, None, None
    if not isinstance(error, dict):
        log_unreadable(raw)
        return None, None, None
    message = error.get("message") or error.get("detail") or payload.get("detail")
    if message is not None and not isinstance(message, str):
        message = orjson.dumps(message).decode()
    code = error.get("code")
    param = error.get("param")
    return (
        message,
        str(code) if code is not None else None,
        str(param) if param is not None else None,
    )
