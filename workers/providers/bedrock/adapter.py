"""Amazon Bedrock through Converse (`POST /model/{modelId}/converse`) and ConverseStream
(`/converse-stream`, AWS event-stream frames), signed with SigV4 or a Bedrock API key."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from workers import pricing
from workers.deployment import Deployment, ProviderDefaults
from workers.errors import InvalidRequest, ProviderError
from workers.http import HttpClient, describe_body, timeout_for, transport_errors
from workers.providers.base import Adapter, ChatCall, EmbeddingCall
from workers.providers.bedrock import converse
from workers.providers.bedrock.embeddings import (
    CONCURRENCY,
    embedding_response,
    is_titan_text_embedding,
    titan_bodies,
)
from workers.providers.bedrock.errors import PROVIDER, http_error
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

# The same path encoding botocore applies to the modelId label (`:` -> %3A, `/` -> %2F);
# the SigV4 canonical URI is computed from this encoded path.
_PATH_SAFE = "-._~"


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
        model_url = f"{base}/model/{quote(self.model, safe=_PATH_SAFE)}"
        self.converse_url = f"{model_url}/converse"
        self.stream_url = f"{model_url}/converse-stream"
        self.invoke_url = f"{model_url}/invoke"
        self.headers = {"Content-Type": "application/json", **deployment.extra_headers}
        priced = deployment.base_model or deployment.model
        self.target = Target(
            model=self.model,
            is_claude=_is_claude(priced) or _is_claude(self.model),
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

    # ------------------------------------------------------------------ chat

    async def chat(self, call: ChatCall) -> ChatCompletion:
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


def _is_claude(model: str) -> bool:
    return "anthropic." in model or "claude" in model.lower()


def _response_id(headers: Any) -> str:
    request_id = headers.get("x-amzn-RequestId")
    return f"chatcmpl-{request_id or uuid.uuid4()}"
