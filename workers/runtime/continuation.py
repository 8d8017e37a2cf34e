"""A stream whose worker died after it sent chunks: what the client already has, whether the
provider can continue from there, and how the continuation's chunks join the stream
(issue #15).

    Delivered.read(records)   -> the text per choice, the chunks' identity, what rules it out
    refusal(...)              -> why not (n > 1, a tool call, reasoning, disabled), or None
    Splice(...).batch(chunks) -> the continuation's chunks as the rest of that stream

The provider-side half is each adapter's `continuation(call, prefix)`. The first attempt's
usage died with its worker, so it is estimated (prompt from the request, completion from
the delivered text, the gateway's usual 4-bytes-a-token estimate) and added to the
continuation's: both attempts were paid. Meta.estimated_tokens says how much is estimated.
"""

from __future__ import annotations

import msgspec

from workers.envelopes import Meta, Record
from workers.tokens import estimate_prompt_tokens, estimate_tokens
from workers.wire import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    Usage,
    decode_chunk,
)

# What became of a stream whose worker died (a metric label): continued, finished (only
# its end was missing), or why not (the stream then ends with worker_lost). Bounded.
CONTINUED = "continued"
FINISHED = "finished"
DISABLED = "disabled"
SEVERAL_CHOICES = "several_choices"
TOOL_CALL = "tool_call"
REASONING = "reasoning"
NOT_SUPPORTED = "not_supported"
FAILED = "failed"
UNREADABLE = "unreadable"


class Delivered:
    """What the records of a reply stream already gave the client."""

    __slots__ = (
        "texts",
        "chunk_id",
        "created",
        "model",
        "meta",
        "has_tool_calls",
        "has_reasoning",
        "finished",
    )

    def __init__(self) -> None:
        self.texts: dict[int, str] = {}
        self.chunk_id = ""
        self.created = 0
        self.model = ""
        # The first record's bookkeeping: the deployment that served the stream.
        self.meta: Meta | None = None
        self.has_tool_calls = False
        self.has_reasoning = False
        # Choices that already got their finish_reason.
        self.finished: set[int] = set()

    @classmethod
    def read(cls, records: list[Record]) -> Delivered:
        """Raises msgspec.DecodeError if a chunk is not one (another producer's records)."""
        delivered = cls()
        for record in records:
            if delivered.meta is None and record.meta is not None and record.meta.deployment:
                delivered.meta = record.meta
            for raw in record.chunks:
                delivered.add(decode_chunk(raw))
        return delivered

    def add(self, chunk: ChatCompletionChunk) -> None:
        if not self.chunk_id:
            self.chunk_id, self.created, self.model = chunk.id, chunk.created, chunk.model
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                self.texts[choice.index] = self.texts.get(choice.index, "") + delta.content
            else:
                self.texts.setdefault(choice.index, "")
            if delta.tool_calls or delta.function_call:
                self.has_tool_calls = True
            if delta.reasoning_content or delta.thinking_blocks:
                self.has_reasoning = True
            if choice.finish_reason:
                self.finished.add(choice.index)

    @property
    def text(self) -> str:
        return self.texts.get(0, "")

    @property
    def is_finished(self) -> bool:
        """Every choice already has its finish_reason: only the end is missing."""
        return bool(self.texts) and self.finished >= self.texts.keys()


def refusal(request: ChatCompletionRequest, delivered: Delivered, enabled: bool) -> str | None:
    """Why this stream cannot be continued whatever the provider, or None."""
    if not enabled:
        return DISABLED
    if (request.n or 1) > 1 or len(delivered.texts) > 1:
        return SEVERAL_CHOICES
    if delivered.has_tool_calls:
        return TOOL_CALL  # a call's arguments may be cut mid-JSON; no provider resumes them
    if delivered.has_reasoning:
        return REASONING  # the prefix would have to carry the reasoning too
    return None


def lost_usage(request: ChatCompletionRequest, delivered: Delivered) -> Usage:
    """The first attempt's usage, which died with its worker: estimated."""
    prompt = estimate_prompt_tokens(request)
    completion = estimate_tokens(delivered.text)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def combined(usage: Usage, lost: Usage) -> Usage:
    """Both attempts' usage: the continuation's as reported, plus the estimated first one."""
    return msgspec.structs.replace(
        usage,
        prompt_tokens=usage.prompt_tokens + lost.prompt_tokens,
        completion_tokens=usage.completion_tokens + lost.completion_tokens,
        total_tokens=usage.total_tokens + lost.total_tokens,
    )


class Splice:
    """Turns the continuation's chunks into the rest of the stream the client already has:
    the same id, created and model as the chunks it got; no second role announcement; the
    text the continuation repeats (`skip`) left out; usage counting both attempts."""

    def __init__(self, delivered: Delivered, skip: str, lost: Usage) -> None:
        self.delivered = delivered
        self.skip = skip
        self.lost = lost

    def batch(self, batch: list[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
        spliced = []
        for chunk in batch:
            if self.delivered.chunk_id:
                chunk.id = self.delivered.chunk_id
                chunk.created = self.delivered.created
                chunk.model = self.delivered.model
            if chunk.usage is not None:
                chunk.usage = combined(chunk.usage, self.lost)
            chunk.choices = [choice for choice in chunk.choices if self._keep(choice)]
            if chunk.choices or chunk.usage is not None:
                spliced.append(chunk)
        return spliced

    def _keep(self, choice: ChunkChoice) -> bool:
        delta = choice.delta
        delta.role = None  # the stream's first chunk said it
        if delta.content and self.skip:
            delta.content = self._skipped(delta.content)
        return bool(
            delta.content
            or delta.refusal
            or delta.tool_calls
            or delta.function_call
            or delta.reasoning_content
            or delta.thinking_blocks
            or choice.finish_reason
            or choice.logprobs
        )

    def _skipped(self, text: str) -> str:
        """`text` without what it repeats of `skip` (whitespace a provider would not take at
        the end of the prefix, so its answer starts with it)."""
        matched = 0
        while matched < min(len(text), len(self.skip)) and text[matched] == self.skip[matched]:
            matched += 1
        if matched == len(text):
            self.skip = self.skip[matched:]  # all of it repeated; the rest may follow
            return ""
        self.skip = ""  # repeated in full, or the continuation went another way
        return text[matched:]
