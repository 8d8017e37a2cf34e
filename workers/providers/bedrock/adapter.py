"""Amazon Bedrock through Converse (`POST /model/{modelId}/converse`) and ConverseStream
(`/converse-stream`, AWS event-stream frames), signed with SigV4 or a Bedrock API key.

A /v1/messages request to a Claude deployment goes in Anthropic's own API instead, through
InvokeModel and InvokeModelWithResponseStream (`invoke.py`, issue #18)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import msgspec
from yarl import URL

from workers import pricing
from workers.deployment import Deployment, ProviderDefaults
from workers.errors import InvalidRequest, ProviderError
from workers.http import HttpClient, describe_body, timeout_for, transport_errors
from workers.providers.anthropic.response import parse_completion
from workers.providers.base import Adapter, ChatCall, EmbeddingCall, NativeBatch, NativeRequest
from workers.providers.bedrock import converse
from workers.providers.bedrock.embeddings import (
    CONCURRENCY,
    embedding_response,
    is_titan_text_embedding,
    titan_bodies,
)
from workers.providers.bedrock.errors import PROVIDER, http_error
from workers.providers.bedrock.invoke import (
    ChunkReader,
    invoke_body,
    is_claude,
    model_path,
    split_route,
    takes_messages,
)
from workers.providers.bedrock.media import remote_image_urls
from workers.providers.bedrock.messages import translate_messages
from workers.providers.bedrock.request import (
    NATIVE_FIELDS,
    Target,
    build_request,
    native_fields,
    refuse_params,
)
from workers.providers.bedrock.response import completion_from
from workers.providers.bedrock.signing import make_signer, resolve_region
from workers.providers.bedrock.stream import StreamTranslator
from workers.wire import (
    EMBEDDING_REQUEST_FIELDS,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingResponse,
    chat_request_from_dict,
    unknown_fields,
)


class BedrockAdapter(Adapter):
    provider: ClassVar[str] = PROVIDER
    defaults: ClassVar[ProviderDefaults] = ProviderDefaults(
        api_base_env=("AWS_BEDROCK_RUNTIME_ENDPOINT",),
        # A Bedrock API key, sent as a bearer token instead of SigV4 (as boto3 does).
        api_key_env=("AWS_BEARER_TOKEN_BEDROCK",),
        requires_api_key=False,
    )
    supports_embeddings: ClassVar[bool] = True  # Titan text embeddings; others refused

    def __init__(self, deployment: Deployment, http: HttpClient) -> None:
        super().__init__(deployment, http)
        options = deployment.options
        endpoint = deployment.api_base or options.get("aws_bedrock_runtime_endpoint")
        api_key = str(deployment.api_key) if deployment.api_key else None
        # The region names the endpoint and scopes SigV4; an API key to a given endpoint
        # needs neither.
        region = "" if api_key and endpoint else resolve_region(options, endpoint)
        base = (endpoint or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        self.signer = make_signer(options, api_key, region)
        # `converse/` and `invoke/` (LiteLLM's route prefixes) are not part of the id.
        model_id = split_route(self.model)[1]
        model_url = f"{base}/{model_path(self.model)}"
        self.converse_url = f"{model_url}/converse"
        self.stream_url = f"{model_url}/converse-stream"
        self.invoke_url = f"{model_url}/invoke"
        self.invoke_stream_url = f"{model_url}/invoke-with-response-stream"
        self.headers = {"Content-Type": "application/json", **deployment.extra_headers}
        self.takes_messages = takes_messages(deployment)
        priced = deployment.base_model or model_id
        self.target = Target(
            model=model_id,
            is_claude=is_claude(priced) or is_claude(model_id),
            max_output_tokens=pricing.max_output_tokens(PROVIDER, priced),
        )

    # ------------------------------------------------------------------ requests

    async def converse_body(self, call: ChatCall) -> bytes:
        """The ConverseRequest JSON for a call; refuses (or drops) what it cannot translate."""
        request, body = self._with_defaults(call)
        refuse = self.refuser(call)
        self.refuse_unknown(call, (n for n in unknown_fields(body) if n not in NATIVE_FIELDS))
        extras = native_fields(body, self.target, refuse)
        dropped = refuse_params(request, self.target, refuse)
        await call.media.fetch_all(self.http, remote_image_urls(request.messages), call.timeout_s)
        conversation = translate_messages(request.messages, call.media, refuse)
        native = build_request(request, conversation, self.target, refuse, dropped, extras)
        return converse.encode_request(native)

    def _with_defaults(self, call: ChatCall) -> tuple[ChatCompletionRequest, dict[str, Any]]:
        defaults = self.deployment.default_params
        if not defaults:
            return call.request, call.body
        body = {**defaults, **call.body}
        try:
            return chat_request_from_dict(body), body
        except msgspec.ValidationError as exc:
            raise InvalidRequest(f"invalid deployment default_params: {exc}") from exc

    async def _post(
        self, url: str, body: bytes, client_timeout: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        headers = await self.signer.headers(url, body, dict(self.headers))
        # encoded=True: send the path exactly as signed (yarl would otherwise decode %3A).
        return await self.http.session.post(
            URL(url, encoded=True), data=body, headers=headers, timeout=client_timeout
        )

    def _native(self, call: ChatCall) -> NativeRequest | None:
        """The client's Anthropic body when this deployment takes it as is (invoke.py)."""
        native = call.native
        if native is None or native.provider != "anthropic" or not self.takes_messages:
            return None
        return native

    # ------------------------------------------------------------------ chat

    async def chat(self, call: ChatCall) -> ChatCompletion:
        direct = self._native(call)
        if direct is not None:
            return await self._invoke_message(direct, call)
        body = await self.converse_body(call)
        timeout = timeout_for(self.timeout_s(call, stream=False), stream=False)
        with transport_errors(PROVIDER, self.model):
            async with await self._post(self.converse_url, body, timeout) as response:
                raw = await self.http.read_body(response, self.provider, self.model)
                if response.status >= 400:
                    raise http_error(response.status, response.headers, raw, model=self.model)
                response_id = _response_id(response.headers)
        try:
            native = converse.decode_response(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProviderError(
                f"Bedrock sent a response that is not a Converse answer: {exc}; "
                f"body: {describe_body(raw)}",
                provider=PROVIDER,
                model=self.model,
            ) from exc
        return completion_from(native, response_id=response_id, model=self.model)

    async def stream(self, call: ChatCall) -> AsyncIterator[list[ChatCompletionChunk]]:
        direct = self._native(call)
        if direct is not None:
            async for batch in self._invoke_stream(direct, call):
                yield batch
            return
        body = await self.converse_body(call)
        timeout = timeout_for(self.timeout_s(call, stream=True), stream=True)
        with transport_errors(PROVIDER, self.model):
            response = await self._post(self.stream_url, body, timeout)
            try:
                if response.status >= 400:
                    raw = await self.http.read_body(response, self.provider, self.model)
                    raise http_error(response.status, response.headers, raw, model=self.model)
                translator = StreamTranslator(
                    _response_id(response.headers), self.model, int(time.time())
                )
                async for data in self.http.iter_body(response, self.provider, self.model):
                    batch = translator.feed(data)
                    if batch:
                        yield batch
                translator.finish()
            finally:
                # Closing (not releasing) an unfinished response drops the connection, so
                # Bedrock stops generating for a client that stopped reading.
                response.close()

    # ------------------------------------------------------------------ Claude, natively

    async def _invoke_message(self, native: NativeRequest, call: ChatCall) -> ChatCompletion:
        body = self.encode_body(invoke_body(native, self.deployment.default_params))
        timeout = timeout_for(self.timeout_s(call, stream=False), stream=False)
        raw = await self._invoke(body, timeout)
        completion = parse_completion(raw, model=self.model)
        # What the client is sent, unchanged (workers/ingress/), as from Anthropic itself.
        completion.native_body = raw  # type: ignore[attr-defined]  # a dict=True Struct
        return completion

    async def _invoke_stream(
        self, native: NativeRequest, call: ChatCall
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        """Batches of Anthropic's stream translation, each with the Anthropic events behind
        it; events that gave no chunk (ping, a block's stop) ride with the next batch."""
        body = self.encode_body(invoke_body(native, self.deployment.default_params))
        timeout = timeout_for(self.timeout_s(call, stream=True), stream=True)
        with transport_errors(PROVIDER, self.model):
            response = await self._post(self.invoke_stream_url, body, timeout)
            try:
                if response.status >= 400:
                    raw = await self.http.read_body(response, self.provider, self.model)
                    raise http_error(response.status, response.headers, raw, model=self.model)
                reader = ChunkReader(self.model)
                pending: list[bytes] = []
                async for data in self.http.iter_body(response, self.provider, self.model):
                    batch, events = reader.feed(data)
                    pending += events
                    if batch or reader.done or reader.failure:
                        yield NativeBatch(batch, pending)
                        pending = []
                    if reader.failure is not None:
                        raise reader.failure  # after what Bedrock sent before it
                    if reader.done:
                        return
                yield NativeBatch(reader.finish(), pending)
            finally:
                response.close()  # as in stream(): Bedrock stops generating

    # ------------------------------------------------------------------ embeddings

    async def embed(self, call: EmbeddingCall) -> EmbeddingResponse:
        if not is_titan_text_embedding(self.deployment.base_model or self.model):
            return await super().embed(call)
        self.refuse_unknown(call, (n for n in call.body if n not in EMBEDDING_REQUEST_FIELDS))
        bodies = titan_bodies(call.request, self.model, self.refuser(call))
        timeout = timeout_for(self.timeout_s(call, stream=False), stream=False)
        in_flight = asyncio.Semaphore(CONCURRENCY)

        async def invoke(body: bytes) -> bytes:
            async with in_flight:
                return await self._invoke(body, timeout)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(invoke(body)) for body in bodies]
        except BaseExceptionGroup as failed:
            # The first failure stands for the request; the group cancelled the other calls.
            raise failed.exceptions[0] from None
        return embedding_response([task.result() for task in tasks], call.request, self.model)

    async def _invoke(self, body: bytes, client_timeout: aiohttp.ClientTimeout) -> bytes:
        with transport_errors(PROVIDER, self.model):
            async with await self._post(self.invoke_url, body, client_timeout) as response:
                raw = await self.http.read_body(response, self.provider, self.model)
                if response.status >= 400:
                    raise http_error(response.status, response.headers, raw, model=self.model)
        return raw


def _response_id(headers: Any) -> str:
    request_id = headers.get("x-amzn-RequestId")
    return f"chatcmpl-{request_id or uuid.uuid4()}"
