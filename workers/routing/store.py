"""What the router asks of a figures store, shared by the Redis store (the service) and the
in-memory one (the SDK Router without Redis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import msgspec

from workers.routing.figures import DeploymentFigures

# Why a deployment could not be taken: "ok" means it was reserved.
Admission = Literal["ok", "cooldown", "rpm", "tpm", "parallel"]

# Weight of the newest sample in the latency and TTFT moving averages: high enough that a
# deployment that slows down loses traffic within a few requests.
EWMA_ALPHA = 0.3


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    rpm: int | None = None
    tpm: int | None = None
    max_parallel_requests: int | None = None

    @property
    def is_unlimited(self) -> bool:
        return not (self.rpm or self.tpm or self.max_parallel_requests)


class AttemptResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one finished attempt tells the figures."""

    latency_ms_per_token: float | None = None
    ttft_ms: float | None = None
    # Actual tokens minus the estimate reserved at admission.
    tokens_delta: int = 0
    # LiteLLM's error class name (RateLimitError, ...) of a failure; None on success.
    failure_class: str | None = None
    # Failures of that class the deployment may have this minute; then it cools down.
    allowed_fails: int = 0
    # 0: this failure never cools the deployment down.
    cooldown_s: float = 0.0


class FiguresStore(Protocol):
    async def snapshot(self, group: str, names: Sequence[str]) -> dict[str, DeploymentFigures]:
        """Current figures of the named deployments of a group."""
        ...

    async def admit(self, group: str, name: str, limits: Limits, prompt_tokens: int) -> Admission:
        """Reserve one in-flight slot (and the request's rpm/tpm) unless a limit forbids it."""
        ...

    async def count_admission(self, group: str, name: str, prompt_tokens: int) -> None:
        """Count an admission nothing can refuse (no limits, no cooldown possible). A store
        may do it without waiting; the matching release still lands after it."""
        ...

    async def release(self, group: str, name: str, result: AttemptResult) -> bool:
        """Free the slot and record the outcome; True if the deployment now cools down."""
        ...

    async def next_cursor(self, group: str) -> int:
        """A counter shared by everyone routing this group (round-robin)."""
        ...
