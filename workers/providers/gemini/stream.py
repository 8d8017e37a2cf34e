"""streamGenerateContent?alt=sse events -> chat.completion.chunk batches.

Each event is a whole GenerateContentResponse: text arrives as increments, a functionCall part
arrives whole (it becomes one tool-call delta carrying id, name and the full arguments), the
finishReason comes on a candidate's last event, and usageMetadata is cumulative (the last one
is final). There is no end marker: the body ends when the stream is done, so a body that
ends before every candidate finished is a failure.
"""

from __future__ import annotations

import time

import msgspec

from workers.errors import ProviderError, SwitchboardError
from workers.http import describe_body
from workers.providers.gemini.errors import PROVIDER, error_from_event
from workers.providers.gemini.response import (
    blocked_prompt,
    digest,
    finish_reason,
    logprobs_of,
    response_id_of,
    usage_of,
)
from workers.providers.gemini.wire import Candidate, GenerateContentResponse, decode_response
from workers.providers.sse_reader import SSEEvent
from workers.wire import (
    ChatCompletionChunk,
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
    new_chunk,
)


class StreamReader:
    """Turns SSE events into chunks under the stream contract of `providers.base`.

    A failure (an error event, a blocked prompt, a failed finishReason) is kept in `failure`
    and the chunks decoded before it are returned first, so the caller yields them and then
    raises: text the client already had a right to is not lost.
    """

    __slots__ = ("model", "created", "id", "usage", "call_counts", "started", "finished", "failure")

    def __init__(self, model: str) -> None:
        self.model = model
        self.created = int(time.time())
        self.id: str | None = None
        self.usage: ChatCompletionChunk | None = None
        self.call_counts: dict[int, int] = {}  # candidate index -> tool calls so far
        self.started: set[int] = set()
        self.finished: set[int] = set()
        self.failure: SwitchboardError | None = None

    def read(self, events: list[SSEEvent]) -> list[ChatCompletionChunk]:
        batch: list[ChatCompletionChunk] = []
        for event in events:
            try:
                chunk = self._chunk(self._decode(event.data))
            except SwitchboardError as exc:
                self.failure = exc
                break
            if chunk is not None:
                batch.append(chunk)
        return batch

    def finish(self) -> list[ChatCompletionChunk]:
        """The body ended: the usage chunk, or a failure if a candidate never finished."""
        if not self.finished or self.finished != self.started:
            raise ProviderError(
                "gemini ended the stream before it finished", provider=PROVIDER, model=self.model
            )
        return [self.usage] if self.usage is not None else []

    def _decode(self, data: bytes) -> GenerateContentResponse:
        try:
            response = decode_response(data)
        except msgspec.DecodeError as exc:
            raise ProviderError(
                f"gemini sent a stream event that is not a response: {describe_body(data)}",
                provider=PROVIDER,
                model=self.model,
            ) from exc
        if response.error is not None:
            raise error_from_event(response.error, model=self.model)
        blocked = blocked_prompt(response, model=self.model)
        if blocked is not None:
            raise blocked
        return response

    def _chunk(self, response: GenerateContentResponse) -> ChatCompletionChunk | None:
        if self.id is None:
            self.id = response_id_of(response)
        model = response.model_version or self.model
        choices = [c for c in map(self._choice, response.candidates) if c is not None]
        if response.usage_metadata is not None:
            usage = usage_of(response.usage_metadata)
            self.usage = new_chunk(self.id, self.created, model, [], usage)
        if not choices:
            return None
        return new_chunk(self.id, self.created, model, choices)

    def _choice(self, candidate: Candidate) -> ChunkChoice | None:
        index = candidate.index
        first_call = self.call_counts.get(index, 0)
        parts = digest(candidate, self.id or "", first_call)
        self.call_counts[index] = first_call + len(parts.calls)
        reason = finish_reason(candidate, has_calls=self.call_counts[index] > 0, model=self.model)
        tool_calls = [
            ToolCallDelta(
                index=first_call + position,
                id=call.id,
                type="function",
                function=FunctionCallDelta(
                    name=call.function.name, arguments=call.function.arguments
                ),
            )
            for position, call in enumerate(parts.calls)
        ]
        logprobs = logprobs_of(candidate.logprobs_result)
        delta = Delta(
            content="".join(parts.texts) or None,
            reasoning_content="".join(parts.thoughts) or None,
            tool_calls=tool_calls or None,
            thinking_blocks=parts.signatures or None,
        )
        if delta == Delta() and reason is None and logprobs is None:
            return None
        if index not in self.started:
            delta.role = "assistant"
            self.started.add(index)
        if reason is not None:
            self.finished.add(index)
        return ChunkChoice(index=index, delta=delta, finish_reason=reason, logprobs=logprobs)
