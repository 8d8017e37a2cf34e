"""Anthropic Messages API (`POST {api_base}/v1/messages`), issue #7.

The adapter owns the connection details (URL, `x-api-key`, pinned `anthropic-version`,
`anthropic-beta` from extra_headers); `request` builds the native body, `response` and
`stream` translate what comes back, `errors` maps failures. Anthropic has no embeddings,
so the base class refusal stands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

import aiohttp

from workers.deployment import Deployment, ProviderDefaults
from workers.errors import AuthenticationFailed
from workers.http import HttpClient, timeout_for, transport_errors
from workers.providers.anthropic.errors import error_from_response
from workers.providers.anthropic.request import REFUSED_PARAMS, build_body
from workers.providers.anthropic.response import parse_completion
from workers.providers.anthropic.stream import StreamTranslator
from workers.providers.base import Adapter, ChatCall
from workers.providers.sse_reader import iter_sse
from workers.wire import ChatCompletion, ChatCompletionChunk

# The documented, stable version; a deployment's api_version overrides it.
API_VERSION = "2023-06-01"
_AUTH_HEADERS = frozenset({"x-api-key", "authorization"})


class AnthropicAdapter(Adapter):
    provider: ClassVar[str] = "anthropic"
    defaults: ClassVar[ProviderDefaults] = ProviderDefaults(
        api_base="https://api.anthropic.com",
        # ANTHROPIC_API_BASE is LiteLLM's name, ANTHROPIC_BASE_URL the official SDK's.
        api_base_env=("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
        api_key_env=("ANTHROPIC_API_KEY",),
        api_version=API_VERSION,
    )
    # OpenAI parameter -> why Anthropic cannot honor it (the docs table is written from it).
    refused_params: ClassVar[Mapping[str, str]] = REFUSED_PARAMS

    def __init__(self, deployment: Deployment, http: HttpClient) -> None:
        super().__init__(deployment, http)
        base = (self.deployment.api_base or self.defaults.api_base or "").rstrip("/")
        # LiteLLM configs often name the whole endpoint or the /v1 root; accept all three.
        base = base.removesuffix("/messages").removesuffix("/v1")
        self.url = f"{base}/v1/messages"
        headers = {
            "content-type": "application/json",
            "anthropic-version": self.deployment.api_version or API_VERSION,
        }
        if self.deployment.api_key:
            headers["x-api-key"] = self.deployment.api_key
        headers.update(self.deployment.extra_headers)  # anthropic-beta passes through here
        self.headers = headers
        self.has_credentials = any(name.lower() in _AUTH_HEADERS for name in headers)

    def _payload(self, call: ChatCall, *, stream: bool) -> bytes:
        if not self.has_credentials:
            raise AuthenticationFailed(
                f"no API key for {self.provider}: pass api_key or set ANTHROPIC_API_KEY",
                provider=self.provider,
                model=self.model,
            )
        body = build_body(call, self.deployment, self.refuser(call), stream=stream)
        return self.encode_body(body)

    async def chat(self, call: ChatCall) -> ChatCompletion:
        payload = self._payload(call, stream=False)
        timeout = timeout_for(self.timeout_s(call, stream=False), stream=False)
        with transport_errors(self.provider, self.model):
            async with self.http.session.post(
                self.url, data=payload, headers=self.headers, timeout=timeout
            ) as response:
                raw = await self.http.read_body(response, self.provider, self.model)
                if response.status >= 400:
                    raise error_from_response(
                        response.status, response.headers, raw, model=self.model
                    )
        return parse_completion(raw, model=self.model)

    async def stream(self, call: ChatCall) -> AsyncIterator[list[ChatCompletionChunk]]:
        payload = self._payload(call, stream=True)
        timeout = timeout_for(self.timeout_s(call, stream=True), stream=True)
        with transport_errors(self.provider, self.model):
            response = await self.http.session.post(
                self.url, data=payload, headers=self.headers, timeout=timeout
            )
            try:
                if response.status >= 400:
                    raw = await self.http.read_body(response, self.provider, self.model)
                    raise error_from_response(
                        response.status, response.headers, raw, model=self.model
                    )
                async for batch in self._batches(response):
                    yield batch
            finally:
                # Closing (not releasing) an unfinished response drops the connection, which
                # is how Anthropic learns that nobody reads the rest and stops generating.
                response.close()

    async def _batches(
        self, response: aiohttp.ClientResponse
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        translator = StreamTranslator(self.model)
        async for events in iter_sse(self.http.iter_body(response, self.provider, self.model)):
            batch = translator.read(events)
            if batch:
                yield batch
            if translator.done:
                return
        yield translator.finish()


__all__ = ["API_VERSION", "AnthropicAdapter"]
