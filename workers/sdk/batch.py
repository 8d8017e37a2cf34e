"""`batch_completion` (LiteLLM's name): many conversations to one model, in-process, at
most `max_concurrency` at a time; results in input order, and a failure in its place
(the exception object, as LiteLLM returns it) without sinking the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from workers.errors import InvalidRequest
from workers.sdk.calls import acompletion
from workers.sdk.sync import run_sync
from workers.wire import ChatCompletion

DEFAULT_MAX_CONCURRENCY = 100


async def abatch_completion(
    model: str,
    messages: Sequence[list[Any]],
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    **kwargs: Any,
) -> list[ChatCompletion | Exception]:
    """One `acompletion` per conversation of `messages`; never streamed."""
    if max_concurrency < 1:
        raise InvalidRequest("max_concurrency must be at least 1", param="max_concurrency")
    if kwargs.get("stream"):
        raise InvalidRequest("batch_completion does not stream", param="stream")
    gate = asyncio.Semaphore(max_concurrency)

    async def one(conversation: list[Any]) -> ChatCompletion | Exception:
        async with gate:
            try:
                result = await acompletion(model, conversation, **kwargs)
            except Exception as exc:  # its place in the results, as LiteLLM
                return exc
            assert isinstance(result, ChatCompletion)  # stream is refused above
            return result

    return list(await asyncio.gather(*(one(list(c)) for c in messages)))


def batch_completion(
    model: str,
    messages: Sequence[list[Any]],
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    **kwargs: Any,
) -> list[ChatCompletion | Exception]:
    """The blocking form of `abatch_completion`; safe to call inside a running event loop."""
    return run_sync(abatch_completion(model, messages, max_concurrency=max_concurrency, **kwargs))
