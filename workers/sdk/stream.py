"""The stream object SDK callers iterate: chunks one by one from an adapter's batches, the
usage chunk kept only when the caller asked for it, cost known once the stream ends."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from workers import accounting
from workers.deployment import Deployment
from workers.providers.base import Adapter, ChatCall
from workers.retry import with_retries
from workers.sdk.sync import iterate_sync
from workers.wire import ChatCompletionChunk, Usage

if TYPE_CHECKING:
    from workers.sdk.callbacks import CallRecord

Batches = AsyncIterator[list[ChatCompletionChunk]]


async def open_stream(
    adapter: Adapter, call: ChatCall, num_retries: int
) -> tuple[list[ChatCompletionChunk], Batches]:
    """Start a stream and read its first batch, retrying failures that happen before it:
    once a chunk has reached the caller, a retry would duplicate text."""

    return await with_retries(lambda: adapter.open_stream(call), num_retries)


class ChatStream:
    """Async iterator of ChatCompletionChunk. After the end, `usage` and `hidden_params`
    (cost_usd, deployment, ...) are set."""

    def __init__(
        self,
        first: list[ChatCompletionChunk],
        rest: Batches,
        *,
        include_usage: bool,
        deployment: Deployment,
        record: CallRecord | None = None,
    ) -> None:
        # The callbacks' record of this call (issue #19): it sees every chunk and the end.
        self._record = record
        self._rest = rest
        self._include_usage = include_usage
        self._deployment = deployment
        self._pending: deque[ChatCompletionChunk] = deque()
        self._ended = False
        self.usage: Usage | None = None
        self.hidden_params: dict[str, Any] = {}
        self._accept(first)

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        while not self._pending:
            if self._ended:
                raise StopAsyncIteration
            try:
                batch = await anext(self._rest)
            except StopAsyncIteration:
                self._finish()
                raise
            except Exception as exc:
                if self._record is not None:
                    self._record.failed(exc)
                raise
            self._accept(batch)
        return self._pending.popleft()

    def _accept(self, batch: list[ChatCompletionChunk]) -> None:
        if self._record is not None:
            self._record.chunks.extend(batch)
        for chunk in batch:
            if chunk.usage is not None and not chunk.choices:
                self.usage = chunk.usage
                if not self._include_usage:
                    continue
            self._pending.append(chunk)

    def _finish(self) -> None:
        self._ended = True
        self.hidden_params = accounting.hidden_params(self._deployment, self.usage)
        if self._record is not None:
            self._record.stream_ended(self.hidden_params, self.usage)

    async def aclose(self) -> None:
        """Stop early: closes the upstream connection so the provider stops generating."""
        self._ended = True
        self._pending.clear()
        await self._rest.aclose()  # type: ignore[attr-defined]  # async generators close


class SyncChatStream:
    """The blocking twin of ChatStream, driven on the SDK's background loop."""

    def __init__(self, stream: ChatStream) -> None:
        self._stream = stream
        self._chunks = iterate_sync(stream)

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self._chunks

    def __next__(self) -> ChatCompletionChunk:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks.close()  # type: ignore[attr-defined]  # a generator

    @property
    def usage(self) -> Usage | None:
        return self._stream.usage

    @property
    def hidden_params(self) -> dict[str, Any]:
        return self._stream.hidden_params
