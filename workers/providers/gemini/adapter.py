"""GeminiAdapter: the Gemini API (generativelanguage.googleapis.com) behind the Adapter contract.

Chat goes to `models/{model}:generateContent` and `:streamGenerateContent?alt=sse`, embeddings
to `:embedContent` / `:batchEmbedContents`, a token count (/v1/messages/count_tokens) to
`:countTokens`. The key travels in the `x-goog-api-key` header,
never in the URL, so it stays out of logs and error messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
import msgspec

from workers.deployment import ProviderDefaults
from workers.errors import AuthenticationFailed, ProviderError, SwitchboardError
from workers.http import describe_body, timeout_for, transport_errors
from workers.providers.base import Adapter, ChatCall, EmbeddingCall
from workers.providers.gemini import embeddings
from workers.providers.gemini.errors import PROVIDER, error_from_response
from workers.providers.gemini.request import build_body, typed_defaults, with_defaults
from workers.providers.gemini.response import to_completion
from workers.providers.gemini.stream import StreamReader
from workers.providers.gemini.wire import decode_embeddings, decode_response
from workers.providers.sse_reader import iter_sse
from workers.wire import ChatCompletion, ChatCompletionChunk, EmbeddingResponse

DEFAULT_API_VERSION = "v1beta"


class GeminiAdapter(Adapter):
    provider: ClassVar[str] = PROVIDER
    defaults: ClassVar[ProviderDefaults] = ProviderDefaults(
        api_base="https://generativelanguage.googleapis.com",
        api_base_env=("GEMINI_API_BASE",),
        api_key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        api_version=DEFAULT_API_VERSION,
    )
    supports_embeddings: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base = (self.deployment.api_base or self.defaults.api_base or "").rstrip("/")
        version = self.deployment.api_version or DEFAULT_API_VERSION
        model = self.model.removeprefix("models/")
        # The model id is one path segment: keep `:`-free characters readable, escape `/`.
        self.model_url = f"{base}/{version}/models/{quote(model, safe='-._~=')}"
        self.model_path = f"models/{model}"
        self.headers = {"Content-Type": "application/json"}
        if self.deployment.api_key:
            self.headers["x-goog-api-key"] = str(self.deployment.api_key)
        self.headers.update(self.deployment.extra_headers)
        self.default_params = typed_defaults(self.deployment.default_params)

    def url(self, method: str) -> str:
        return f"{self.model_url}:{method}"

    def check_credentials(self) -> None:
        if "x-goog-api-key" not in self.headers:
            raise AuthenticationFailed(
                "no API key for gemini: pass api_key or set "
                + " or ".join(self.defaults.api_key_env),
                provider=PROVIDER,
                model=self.model,
            )

    # ------------------------------------------------------------------ chat

    async def payload(self, call: ChatCall, *, stream: bool) -> bytes:
        return self.encode_body(await self._native(call, stream=stream))

    async def _native(self, call: ChatCall, *, stream: bool) -> dict[str, Any]:
        self.check_credentials()
        request, body = with_defaults(call.request, call.body, self.default_params)
        return await build_body(
            request,
            body,
            self.http,
            call.media,
            refuse=self.refuser(call),
            model=self.model,
            timeout_s=self.timeout_s(call, stream=stream),
        )

    async def count_tokens(self, call: ChatCall) -> int:
        """Gemini's own count of the request's input (`:countTokens` with the whole
        GenerateContentRequest: system instruction and tools count too)."""
        native = {"model": self.model_path, **await self._native(call, stream=False)}
        payload = self.encode_body({"generateContentRequest": native})
        raw = await self._post(self.url("countTokens"), payload, call)
        try:
            counted = msgspec.json.decode(raw)
            return int(counted["totalTokens"])
        except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
            raise self._unreadable("a countTokens response", raw) from exc

    async def chat(self, call: ChatCall) -> ChatCompletion:
        payload = await self.payload(call, stream=False)
        raw = await self._post(self.url("generateContent"), payload, call)
        try:
            response = decode_response(raw)
        except msgspec.DecodeError as exc:
            raise self._unreadable("a generateContent response", raw) from exc
        return to_completion(response, model=self.model)

    async def stream(self, call: ChatCall) -> AsyncIterator[list[ChatCompletionChunk]]:
        payload = await self.payload(call, stream=True)
        timeout = timeout_for(self.timeout_s(call, stream=True), stream=True)
        url = self.url("streamGenerateContent") + "?alt=sse"
        with transport_errors(PROVIDER, self.model):
            response = await self.http.session.post(
                url, data=payload, headers=self.headers, timeout=timeout
            )
            try:
                if response.status >= 400:
                    raise self.error(
                        response.status,
                        await self.http.read_body(response, self.provider, self.model),
                        response.headers,
                    )
                async for batch in self._chunks(response):
                    yield batch
            finally:
                # Closing (not releasing) an unfinished response drops the connection, which
                # is how Gemini learns that nobody reads the rest.
                response.close()

    async def _chunks(
        self, response: aiohttp.ClientResponse
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        reader = StreamReader(self.model)
        async for events in iter_sse(self.http.iter_body(response, self.provider, self.model)):
            batch = reader.read(events)
            if batch:
                yield batch
            if reader.failure is not None:
                raise reader.failure
        tail = reader.finish()
        if tail:
            yield tail

    # ------------------------------------------------------------------ embeddings

    async def embed(self, call: EmbeddingCall) -> EmbeddingResponse:
        self.check_credentials()
        request = call.request
        texts = embeddings.texts_of(request, call.body, self.refuser(call), model=self.model)
        vectors: list[list[float]] = []
        reported: list[int] = []
        for batch in embeddings.batches(texts):
            if len(texts) == 1:
                body = embeddings.embed_request(batch[0], request, call.body)
                url = self.url("embedContent")
            else:
                requests = [
                    embeddings.embed_request(t, request, call.body, self.model_path) for t in batch
                ]
                body, url = {"requests": requests}, self.url("batchEmbedContents")
            raw = await self._post(url, self.encode_body(body), call)
            try:
                answer = decode_embeddings(raw)
            except msgspec.DecodeError as exc:
                raise self._unreadable("an embedding response", raw) from exc
            vectors.extend(embeddings.vectors_of(answer))
            if answer.usage_metadata is not None:
                reported.append(answer.usage_metadata.prompt_token_count)
        if len(vectors) != len(texts):
            raise ProviderError(
                f"gemini returned {len(vectors)} embeddings for {len(texts)} inputs",
                provider=PROVIDER,
                model=self.model,
            )
        return embeddings.to_response(
            vectors,
            texts,
            sum(reported) if reported else None,
            encoding_format=request.encoding_format,
            model=self.model,
        )

    # ------------------------------------------------------------------ HTTP

    async def _post(self, url: str, payload: bytes, call: ChatCall | EmbeddingCall) -> bytes:
        timeout = timeout_for(self.timeout_s(call, stream=False), stream=False)
        with transport_errors(PROVIDER, self.model):
            async with self.http.session.post(
                url, data=payload, headers=self.headers, timeout=timeout
            ) as response:
                raw = await self.http.read_body(response, self.provider, self.model)
                if response.status >= 400:
                    raise self.error(response.status, raw, response.headers)
        return raw

    def error(self, status: int, raw: bytes, headers: Mapping[str, str]) -> SwitchboardError:
        return error_from_response(status, raw, headers, model=self.model)

    def _unreadable(self, what: str, raw: bytes) -> ProviderError:
        return ProviderError(
            f"gemini sent something that is not {what}: {describe_body(raw)}",
            provider=PROVIDER,
            model=self.model,
        )
