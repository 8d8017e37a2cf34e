"""`text-completion-openai/`: OpenAI's legacy completions API (`POST /v1/completions`) for
instruct models (`gpt-3.5-turbo-instruct`, `davinci-002`), and any server that speaks it.

Requests arrive as chat requests (the gateway's one internal shape; a /v1/completions
request became one user message holding its prompt, workers/text_completions.py). The
messages become the prompt again, unchanged for a completion request, and the answer comes
back as chat objects so accounting and failover treat it like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import aiohttp
import msgspec

from workers.errors import ProviderError
from workers.http import describe_body, timeout_for, transport_errors
from workers.providers.base import ChatCall
from workers.providers.openai import OpenAIAdapter
from workers.providers.sse_reader import iter_sse
from workers.text_completions import TextCompletion, decode_text_completion, prompt_of
from workers.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    assistant_message,
    new_chunk,
)

_NO_TOOLS = "legacy completions models do not call tools"
# Chat fields the completions API has no place for.
_CHAT_ONLY = ("messages", "tools", "tool_choice", "parallel_tool_calls", "functions")


class TextCompletionOpenAIAdapter(OpenAIAdapter):
    provider: ClassVar[str] = "text-completion-openai"
    supports_embeddings: ClassVar[bool] = False
    refused_params: ClassVar[Mapping[str, str]] = {
        "tools": _NO_TOOLS,
        "tool_choice": _NO_TOOLS,
        "functions": _NO_TOOLS,
        "function_call": _NO_TOOLS,
        "response_format": "legacy completions have no JSON mode",
        "thinking": "legacy completions models do not reason",
    }

    def chat_url(self) -> str:
        return f"{self.base_url}/completions"

    def adapt_body(self, body: dict[str, Any], call: ChatCall) -> None:
        body["prompt"] = prompt_of(list(body.get("messages") or ()))
        if "max_completion_tokens" in body:
            body.setdefault("max_tokens", body.pop("max_completion_tokens"))
        for name in _CHAT_ONLY:
            body.pop(name, None)

    async def chat(self, call: ChatCall) -> ChatCompletion:
        payload = self.encode_body(self.chat_body(call, stream=False))
        timeout = timeout_for(self.timeout_s(call, stream=False), stream=False)
        with transport_errors(self.provider, self.model):
            async with self.http.session.post(
                self.chat_url(), data=payload, headers=self.headers, timeout=timeout
            ) as response:
                raw = await self.http.read_body(response, self.provider, self.model)
                if response.status >= 400:
                    raise self.error(response, raw)
        completion = self._decode(raw)
        return ChatCompletion(
            id=completion.id,
            created=completion.created,
            model=completion.model,
            choices=[
                Choice(
                    index=c.index,
                    message=assistant_message(c.text),
                    finish_reason=c.finish_reason,
                )
                for c in completion.choices
            ],
            usage=completion.usage,
            system_fingerprint=completion.system_fingerprint,
        )

    async def _chunks(
        self, response: aiohttp.ClientResponse
    ) -> AsyncIterator[list[ChatCompletionChunk]]:
        usage_chunk: ChatCompletionChunk | None = None
        async for events in iter_sse(self.http.iter_body(response, self.provider, self.model)):
            batch: list[ChatCompletionChunk] = []
            for event in events:
                if event.data == b"[DONE]":
                    yield [*batch, *([usage_chunk] if usage_chunk else [])]
                    return
                piece = self._decode(event.data)
                chunk = new_chunk(
                    piece.id,
                    piece.created,
                    piece.model,
                    [
                        ChunkChoice(
                            index=c.index,
                            delta=Delta(role="assistant", content=c.text),
                            finish_reason=c.finish_reason,
                        )
                        for c in piece.choices
                    ],
                )
                if piece.usage is not None:
                    # Usage goes last, on a chunk of its own (the adapter contract).
                    usage_chunk = new_chunk(piece.id, piece.created, piece.model, [], piece.usage)
                if chunk.choices:
                    batch.append(chunk)
            if batch:
                yield batch
        raise ProviderError(
            f"{self.provider} ended the stream before [DONE]",
            provider=self.provider,
            model=self.model,
        )

    def _decode(self, raw: bytes) -> TextCompletion:
        try:
            return decode_text_completion(raw)
        except msgspec.DecodeError as exc:
            raise ProviderError(
                f"{self.provider} sent a response that is not a text completion: {exc}; "
                f"body: {describe_body(raw)}",
                provider=self.provider,
                model=self.model,
            ) from exc
