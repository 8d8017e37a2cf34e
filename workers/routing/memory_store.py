"""The in-process twin of the Redis figures store, for an SDK Router without Redis.

Same semantics (per-minute usage, moving averages, cooldowns); one process, one owner.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Sequence

from workers.routing.figures import DeploymentFigures, current_minute
from workers.routing.store import EWMA_ALPHA, Admission, AttemptResult, Limits


class MemoryFigures:
    def __init__(self, *, stats_ttl_s: float = 3600.0) -> None:
        self.stats_ttl_s = stats_ttl_s
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._cooldown_until: dict[tuple[str, str], float] = {}
        # (group, deployment) -> (average, when last updated)
        self._latency: dict[tuple[str, str], tuple[float, float]] = {}
        self._ttft: dict[tuple[str, str], tuple[float, float]] = {}
        self._minute = 0
        self._usage: Counter[tuple[str, str, str]] = Counter()
        self._cursors: dict[str, itertools.count[int]] = {}

    def _roll_minute(self, now: float) -> None:
        minute = current_minute(now)
        if minute != self._minute:
            self._minute = minute
            self._usage.clear()

    def _average(
        self, table: dict[tuple[str, str], tuple[float, float]], key: tuple[str, str], now: float
    ) -> float | None:
        found = table.get(key)
        if found is None or now - found[1] > self.stats_ttl_s:
            return None
        return found[0]

    async def snapshot(self, group: str, names: Sequence[str]) -> dict[str, DeploymentFigures]:
        now = time.time()
        self._roll_minute(now)
        return {name: self._figures(group, name, now) for name in names}

    def _figures(self, group: str, name: str, now: float) -> DeploymentFigures:
        key = (group, name)
        return DeploymentFigures(
            in_flight=self._in_flight[key],
            cooldown_s=max(0.0, self._cooldown_until.get(key, 0.0) - now),
            latency_ms_per_token=self._average(self._latency, key, now),
            ttft_ms=self._average(self._ttft, key, now),
            rpm_used=self._usage[(group, name, "rpm")],
            tpm_used=max(0, self._usage[(group, name, "tpm")]),
            minute_failures=self._usage[(group, name, "err")],
        )

    async def admit(self, group: str, name: str, limits: Limits, prompt_tokens: int) -> Admission:
        now = time.time()
        self._roll_minute(now)
        key = (group, name)
        if self._cooldown_until.get(key, 0.0) > now:
            return "cooldown"
        if limits.rpm and self._usage[(group, name, "rpm")] + 1 > limits.rpm:
            return "rpm"
        if limits.tpm and self._usage[(group, name, "tpm")] + prompt_tokens > limits.tpm:
            return "tpm"
        if limits.max_parallel_requests and self._in_flight[key] >= limits.max_parallel_requests:
            return "parallel"
        self._in_flight[key] += 1
        self._usage[(group, name, "rpm")] += 1
        self._usage[(group, name, "tpm")] += prompt_tokens
        return "ok"

    async def count_admission(self, group: str, name: str, prompt_tokens: int) -> None:
        await self.admit(group, name, Limits(), prompt_tokens)

    async def release(self, group: str, name: str, result: AttemptResult) -> bool:
        now = time.time()
        self._roll_minute(now)
        key = (group, name)
        self._in_flight[key] = max(0, self._in_flight[key] - 1)
        for table, sample in (
            (self._latency, result.latency_ms_per_token),
            (self._ttft, result.ttft_ms),
        ):
            if sample is not None:
                old = self._average(table, key, now)
                table[key] = (sample if old is None else old + EWMA_ALPHA * (sample - old), now)
        self._usage[(group, name, "tpm")] += result.tokens_delta
        if result.failure_class is None:
            return False
        self._usage[(group, name, "err")] += 1
        fail_key = (group, name, f"fail|{result.failure_class}")
        self._usage[fail_key] += 1
        if result.cooldown_s > 0 and self._usage[fail_key] > result.allowed_fails:
            del self._usage[fail_key]
            self._cooldown_until[key] = now + result.cooldown_s
            return True
        return False

    async def next_cursor(self, group: str) -> int:
        counter = self._cursors.setdefault(group, itertools.count(1))
        return next(counter)
