"""The Ollama adapter: `/api/chat` (or `/api/generate`), whole or as NDJSON streams, and
`/api/embed`; Ollama's answers become OpenAI objects, its `{"error": ...}` our error tree."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import orjson

from workers.deployment import ProviderDefaults
from workers.errors import ProviderError, SwitchboardError
from workers.http import describe_body, error_from_response, timeout_for, transport_errors
from workers.providers.base import Adapter, ChatCall, EmbeddingCall
from workers.providers.ollama.request import chat_body, generate_body
from workers.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    Embedding,
    EmbeddingResponse,
    EmbeddingUsage,
    FunctionCall,
    FunctionCallDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    assistant_message,
    embedding_inputs,
    new_chunk,
)


class OllamaAdapter(Adapter):
    provider: ClassVar[str] = "ollama"
    defaults: ClassVar[ProviderDefaults] = ProviderDefaults(
        api_base="http://localhost:11434",
        api_base_env=("OLLAMA_API_BASE",),
        api_key_env=("OLLAMA_API_KEY",),
        requires_api_key=False,
    )
    supports_embeddings: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base = (self.deployment.api_base or self.defaults.api_base or "").rstrip("/")
        # A base written for the OpenAI surface (`.../v1`) still reaches the native API.
        self.base_url = base.removesuffix("/v1")
        self.headers = {"Content-Type": "application/json", **self.deployment.extra_headers}
        if self.deployment.api_key:
            # Ollama behind an authenticating proxy (or ollama.com) takes a bearer key.
            self.headers["Authorization"] = f"Bearer {self.deployment.api_key}"

    # ------------------------------------------------------------------ chat

    def _request(self, call: ChatCall, *, stream: bool) -> tuple[str, bytes]:
        body = {**self.deployment.default_params, **call.body}
        refuse = self.refuser(call)
        if call.is_text_completion:
            payload = generate_body(body, self.model, refuse, stream=stream)
            return f"{self.base_url}/api/generate", self.encode_body(payload)
        payload = chat_body(body, self.model, refuse, stream=stream)
        return f"{self.base_url}/api/chat", self.encode_body(payload)

    async def chat(self, call: ChatCall) -> ChatCompletion:
        url, payload = self._request(call, stream=False)
        raw = await self._post(url, payload, self.timeout_s(call, stream=False))
        answer = self._decode(raw)
        message = _message(answer)
        calls = message.get("tool_calls") or []
        return ChatCompletion(
            id=_completion_id(call),
            created=int(time.time()),
            model=str(answer.get("model") or self.model),
            choices=[
                Choice(
                    message=assistant_message(
                        str(message.get("content") or "") or (None if calls else ""),
                        tool_calls=[_tool_call(i, c) for i, c in enumerate(calls)] or None,
                    ),
                    finish_reason=_finish_reason(answer, bool(calls)),
                )
            ],
            usage=_usage(answer),
        )

    async def stream(self, call: ChatCall) -> AsyncIterator[list[ChatCompletionChunk]]:
        url, payload = self._request(call, stream=True)
        timeout = timeout_for(self.timeout_s(call, stream=True), stream=True)
        with transport_errors(self.provider, self.model):
            response = await self.http.session.post(
                url, data=payload, headers=self.headers, timeout=timeout
            )
            try:
                if response.status >= 400:
                    raw = await self.http.read_body(response, self.provider, self.model)
                    raise self._error(response.status, response.headers, raw)
                async for batch in self._chunks(response, _completion_id(call)):
                    yield batch
            finally:
                response.close()

    async def _chunks(
        self, response: aiohttp.ClientResponse, chunk_id: str
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        reader = _LineReader(self, chunk_id)
        buffered = b""
        async for data in self.http.iter_body(response, self.provider, self.model):
            lines = (buffered + data).split(b"\n")
            buffered = lines.pop()
            batch = reader.read(lines)
            if batch:
                yield batch
            if reader.done:
                return
        tail = reader.read([buffered])
        if not reader.done:
            raise ProviderError(
                f"{self.provider} ended the stream before it was done",
                provider=self.provider,
                model=self.model,
            )
        yield tail

    # ------------------------------------------------------------------ embeddings

    async def embed(self, call: EmbeddingCall) -> EmbeddingResponse:
        try:
            inputs = embedding_inputs(call.request)
        except ValueError as exc:
            raise ProviderError(str(exc), provider=self.provider, model=self.model) from exc
        if not all(isinstance(text, str) for text in inputs):
            self.refuser(call)("input", "Ollama embeds text, not token ids")
        payload = self.encode_body({"model": self.model, "input": inputs})
        raw = await self._post(
            f"{self.base_url}/api/embed", payload, self.timeout_s(call, stream=False)
        )
        answer = self._decode(raw)
        vectors = answer.get("embeddings")
        if not isinstance(vectors, list):
            raise self._unreadable(raw)
        tokens = int(answer.get("prompt_eval_count") or 0)
        return EmbeddingResponse(
            data=[Embedding(index=i, embedding=v) for i, v in enumerate(vectors)],
            model=str(answer.get("model") or self.model),
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )

    # ------------------------------------------------------------------ plumbing

    async def _post(self, url: str, payload: bytes, timeout_s: float | None) -> bytes:
        timeout = timeout_for(timeout_s, stream=False)
        with transport_errors(self.provider, self.model):
            async with self.http.session.post(
                url, data=payload, headers=self.headers, timeout=timeout
            ) as response:
                raw = await self.http.read_body(response, self.provider, self.model)
                if response.status >= 400:
                    raise self._error(response.status, response.headers, raw)
                return raw

    def _decode(self, raw: bytes) -> dict[str, Any]:
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise self._unreadable(raw)
        if answer.get("error"):
            raise self._error(502, {}, raw)
        return answer

    def _unreadable(self, raw: bytes) -> ProviderError:
        return ProviderError(
            f"{self.provider} sent a response Switchboard cannot read: {describe_body(raw)}",
            provider=self.provider,
            model=self.model,
        )

    def _error(self, status: int, headers: Any, raw: bytes) -> SwitchboardError:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            payload = None
        error = payload.get("error") if isinstance(payload, dict) else None
        message = str(error) if error else f"{self.provider} answered HTTP {status}"
        return error_from_response(
            status,
            headers,
            message,
            code=None,
            param=None,
            provider=self.provider,
            model=self.model,
        )


class _LineReader:
    """NDJSON lines -> chunks: content and tool calls as deltas, then the finish and usage."""

    def __init__(self, adapter: OllamaAdapter, chunk_id: str) -> None:
        self.adapter = adapter
        self.id = chunk_id
        self.created = int(time.time())
        self.done = False
        self.tool_calls = 0

    def read(self, lines: list[bytes]) -> list[ChatCompletionChunk]:
        batch: list[ChatCompletionChunk] = []
        for line in lines:
            if not line.strip() or self.done:
                continue
            answer = self.adapter._decode(line)
            model = str(answer.get("model") or self.adapter.model)
            message = _message(answer)
            delta = Delta(content=str(message.get("content") or "") or None)
            calls = message.get("tool_calls") or []
            if calls:
                delta.tool_calls = [
                    _tool_call_delta(self.tool_calls + i, c) for i, c in enumerate(calls)
                ]
                self.tool_calls += len(calls)
            if delta.content or delta.tool_calls:
                batch.append(self._chunk(model, [ChunkChoice(delta=delta)]))
            if answer.get("done"):
                self.done = True
                reason = _finish_reason(answer, self.tool_calls > 0)
                batch.append(self._chunk(model, [ChunkChoice(delta=Delta(), finish_reason=reason)]))
                batch.append(new_chunk(self.id, self.created, model, [], _usage(answer)))
        return batch

    def _chunk(self, model: str, choices: list[ChunkChoice]) -> ChatCompletionChunk:
        return new_chunk(self.id, self.created, model, choices)


def _message(answer: dict[str, Any]) -> dict[str, Any]:
    """`/api/chat`'s message, or `/api/generate`'s response as one."""
    message = answer.get("message")
    if isinstance(message, dict):
        return message
    return {"content": answer.get("response") or ""}


def _completion_id(call: ChatCall) -> str:
    return f"chatcmpl-{call.request_id or uuid.uuid4().hex}"


def _finish_reason(answer: dict[str, Any], has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_calls"
    return "length" if answer.get("done_reason") == "length" else "stop"


def _usage(answer: dict[str, Any]) -> Usage:
    prompt = int(answer.get("prompt_eval_count") or 0)
    completion = int(answer.get("eval_count") or 0)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _arguments(call: dict[str, Any]) -> tuple[str, str]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    text = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
    return str(function.get("name") or ""), text


def _tool_call(index: int, call: dict[str, Any]) -> ToolCall:
    name, arguments = _arguments(call)
    return ToolCall(id=f"call_{index}", function=FunctionCall(name=name, arguments=arguments))


def _tool_call_delta(index: int, call: dict[str, Any]) -> ToolCallDelta:
    name, arguments = _arguments(call)
    return ToolCallDelta(
        index=index,
        id=f"call_{index}",
        type="function",
        function=FunctionCallDelta(name=name, arguments=arguments),
    )
