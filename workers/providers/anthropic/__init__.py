"""Anthropic Messages API (`POST {api_base}/v1/messages`), issue #7.

The adapter owns the connection details (URL, `x-api-key`, pinned `anthropic-version`,
`anthropic-beta` from extra_headers); `request` builds the native body, `response` and
`stream` translate what comes back, `errors` maps failures. Anthropic has no embeddings,
so the base class refusal stands.

A stream cut off by its worker's death continues by assistant prefill (`continuation`): the
text delivered so far goes as the final assistant message and Claude answers with the rest.
Prefill is refused with extended thinking and by Claude 4.6 and later models (both a 400),
and a prefill may not end in whitespace (a 400 too), so that is held back and skipped from
the continuation's start.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import aiohttp

from workers.deployment import Deployment, ProviderDefaults
from workers.errors import AuthenticationFailed
from workers.http import HttpClient, timeout_for, transport_errors
from workers.providers.anthropic.errors import error_from_response
from workers.providers.anthropic.request import REFUSED_PARAMS, build_body
from workers.providers.anthropic.response import parse_completion
from workers.providers.anthropic.stream import StreamTranslator
from workers.providers.base import (
    Adapter,
    ChatCall,
    Continued,
    NativeBatch,
    NativeRequest,
    with_prefix,
)
from workers.providers.sse_reader import iter_sse
from workers.wire import ChatCompletion, ChatCompletionChunk

# The documented, stable version; a deployment's api_version overrides it.
API_VERSION = "2023-06-01"
_AUTH_HEADERS = frozenset({"x-api-key", "authorization"})
# "Prefilling assistant messages returns a 400 error on Claude 4.6 models" (Anthropic's
# migration guide to Claude 4.6); the models after them keep that.
PREFILL_REFUSED_FROM = (4, 6)
_GENERATION = re.compile(r"claude-(?:opus|sonnet|haiku)-(\d+)(?:-(\d{1,2}))?(?:-|$)")


def refuses_prefill(model: str) -> bool:
    """Whether `model` (a dated id or an alias) is of a generation that refuses prefill."""
    match = _GENERATION.search(model)
    if match is None:
        return False
    return (int(match[1]), int(match[2] or 0)) >= PREFILL_REFUSED_FROM


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

    def _native(self, call: ChatCall) -> NativeRequest | None:
        native = call.native
        return native if native is not None and native.provider == self.provider else None

    def _payload(self, call: ChatCall, *, stream: bool) -> bytes:
        if not self.has_credentials:
            raise AuthenticationFailed(
                f"no API key for {self.provider}: pass api_key or set ANTHROPIC_API_KEY",
                provider=self.provider,
                model=self.model,
            )
        return self.encode_body(self._body(call, stream=stream))

    def _body(self, call: ChatCall, *, stream: bool) -> dict[str, Any]:
        native = self._native(call)
        if native is not None:
            # The client's body as it sent it, only the model replaced (issue #18).
            return {**self.deployment.default_params, **native.body, "model": self.model}
        return build_body(call, self.deployment, self.refuser(call), stream=stream)

    def _endpoint(self, *, stream: bool) -> str:
        """Where a call goes (one URL here; Claude on Vertex names the method in it)."""
        return self.url

    async def _request_headers(self, call: ChatCall) -> Mapping[str, str]:
        """A call's headers, credentials included (Vertex mints a token for them)."""
        return self._headers(call)

    def _headers(self, call: ChatCall) -> Mapping[str, str]:
        native = self._native(call)
        beta = native.headers.get("anthropic-beta") if native is not None else None
        if not beta:
            return self.headers
        ours = self.headers.get("anthropic-beta")
        return {**self.headers, "anthropic-beta": f"{ours},{beta}" if ours else beta}

    def continuation(self, call: ChatCall, prefix: str) -> Continued | str:
        request = call.request
        thinking = (request.thinking or {}).get("type")
        if thinking in ("enabled", "adaptive") or request.reasoning_effort not in (None, "none"):
            return "extended thinking refuses a prefilled answer"
        model = self.deployment.base_model or self.model
        if refuses_prefill(model):
            return f"{model} refuses a prefilled answer (Claude 4.6 and later do)"
        # "The prefill content cannot end with trailing whitespace" (a 400).
        kept = prefix.rstrip()
        return Continued(call=with_prefix(call, kept), skip=prefix[len(kept) :])

    async def chat(self, call: ChatCall) -> ChatCompletion:
        payload = self._payload(call, stream=False)
        timeout = timeout_for(self.timeout_s(call, stream=False), stream=False)
        headers = await self._request_headers(call)
        with transport_errors(self.provider, self.model):
            async with self.http.session.post(
                self._endpoint(stream=False), data=payload, headers=headers, timeout=timeout
            ) as response:
                raw = await self.http.read_body(response, self.provider, self.model)
                if response.status >= 400:
                    raise error_from_response(
                        response.status, response.headers, raw, model=self.model
                    )
        completion = parse_completion(raw, model=self.model)
        if self._native(call) is not None:
            # What a native client is sent, unchanged (workers/ingress/).
            completion.native_body = raw  # type: ignore[attr-defined]  # a dict=True Struct
        return completion

    async def stream(self, call: ChatCall) -> AsyncIterator[list[ChatCompletionChunk]]:
        payload = self._payload(call, stream=True)
        timeout = timeout_for(self.timeout_s(call, stream=True), stream=True)
        headers = await self._request_headers(call)
        with transport_errors(self.provider, self.model):
            response = await self.http.session.post(
                self._endpoint(stream=True), data=payload, headers=headers, timeout=timeout
            )
            try:
                if response.status >= 400:
                    raw = await self.http.read_body(response, self.provider, self.model)
                    raise error_from_response(
                        response.status, response.headers, raw, model=self.model
                    )
                batches = self._batches(response)
                if self._native(call) is not None:
                    batches = self._native_batches(response)
                async for batch in batches:
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

    async def _native_batches(
        self, response: aiohttp.ClientResponse
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        """The same batches, each with the provider's events behind it; events that gave no
        chunk (ping, a block's stop) ride with the next batch."""
        translator = StreamTranslator(self.model)
        pending: list[bytes] = []
        async for events in iter_sse(self.http.iter_body(response, self.provider, self.model)):
            batch = translator.read(events)
            pending += [b"event: %s\ndata: %s" % (e.event or b"message", e.data) for e in events]
            if batch or translator.done:
                yield NativeBatch(batch, pending)
                pending = []
            if translator.done:
                return
        yield NativeBatch(translator.finish(), pending)


__all__ = ["API_VERSION", "AnthropicAdapter"]
