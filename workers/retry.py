"""Retry timing: exponential backoff with full jitter, or the provider's Retry-After."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from workers.errors import SwitchboardError

T = TypeVar("T")

BASE_DELAY_S = 0.5
MAX_DELAY_S = 8.0
# A provider asking for a longer pause is better served by a fallback than by waiting.
MAX_RETRY_AFTER_S = 60.0


def backoff_s(attempt: int, retry_after_s: float | None = None) -> float:
    """Delay before retry number `attempt` (0-based)."""
    if retry_after_s is not None:
        return min(retry_after_s, MAX_RETRY_AFTER_S)
    ceiling = min(MAX_DELAY_S, BASE_DELAY_S * (2**attempt))
    return random.uniform(ceiling / 2, ceiling)


async def with_retries(
    attempt_once: Callable[[], Awaitable[T]],
    num_retries: int,
    *,
    on_retry: Callable[[SwitchboardError, int, float], None] | None = None,
) -> T:
    """Run `attempt_once`, retrying retryable errors up to `num_retries` times."""
    attempt = 0
    while True:
        try:
            return await attempt_once()
        except SwitchboardError as exc:
            if not exc.retryable or attempt >= num_retries:
                raise
            delay = backoff_s(attempt, exc.retry_after_s)
            if on_retry is not None:
                on_retry(exc, attempt + 1, delay)
            await asyncio.sleep(delay)
            attempt += 1
