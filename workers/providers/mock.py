"""LiteLLM's mock parameters (issue #16): `mock_response` answers with its text, never
calling the provider; `mock_timeout` fails the way a timed-out attempt does. Set per
deployment (`litellm_params.mock_response`, `mock_timeout`) for tests and health checks, or
per request (`"mock_response": "..."` in the body). Usage is estimated (4 bytes a token), so
spend and limits still count something.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from workers.errors import RequestTimeout
from workers.providers.base import Adapter, ChatCall
from workers.tokens import estimate_tokens
from workers.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
    assistant_message,
    new_chunk,
)


class MockAdapter(Adapter):
    """Answers for `adapter`'s deployment without reaching its provider."""

    provider: ClassVar[str] = "mock"

    def __init__(self, adapter: Adapter, text: str | None, *, timeout: bool = False) -> None:
        super().__init__(adapter.deployment, adapter.http)
        self.provider = adapter.provider  # type: ignore[misc]  # report the real provider
        self.text = text or ""
        self.timeout = timeout

    def _check(self) -> None:
        if self.timeout:
            raise RequestTimeout(
                "mock_timeout: this deployment is set to time out (litellm_params.mock_timeout)",
                provider=self.provider,
                model=self.model,
            )

    def _usage(self, call: ChatCall) -> Usage:
        prompt = estimate_tokens(call.body.get("messages", []))
        completion = estimate_tokens(self.text)
        return Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    async def chat(self, call: ChatCall) -> ChatCompletion:
        self._check()
        return ChatCompletion(
            id=_id(call),
            created=int(time.time()),
            model=self.model,
            choices=[Choice(message=assistant_message(self.text), finish_reason="stop")],
            usage=self._usage(call),
        )

    async def stream(self, call: ChatCall) -> AsyncIterator[list[ChatCompletionChunk]]:
        self._check()
        chunk_id, created = _id(call), int(time.time())
        words = self.text.split(" ")
        pieces = [w if i == 0 else f" {w}" for i, w in enumerate(words)]

        def chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
            choice = ChunkChoice(delta=delta, finish_reason=finish)
            return new_chunk(chunk_id, created, self.model, [choice])

        batch = [chunk(Delta(role="assistant", content=piece)) for piece in pieces if piece]
        batch.append(chunk(Delta(), "stop"))
        batch.append(new_chunk(chunk_id, created, self.model, [], self._usage(call)))
        yield batch


def mock_of(adapter: Adapter, call: Any) -> Adapter | None:
    """The mock standing in for `adapter` on this call, if the call or deployment asks."""
    requested = getattr(call, "mock_response", None)
    if isinstance(requested, str):
        return MockAdapter(adapter, requested)
    deployment = adapter.deployment
    if deployment.mock_timeout or deployment.mock_response is not None:
        return MockAdapter(adapter, deployment.mock_response, timeout=deployment.mock_timeout)
    return None


def _id(call: ChatCall) -> str:
    return f"chatcmpl-{call.request_id or uuid.uuid4().hex}"
