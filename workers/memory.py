"""Giving memory back after a large job (issue #13: a worker's RSS went from 52 to 367 MB
after one large reply and stayed there).

Freed Python objects go back to the allocator, not to the system: glibc keeps freed heap
pages for reuse, and after it frees one large mapped block it raises its mmap threshold, so
later large buffers come from the heap too. `malloc_trim(0)` hands the free pages back.
Each job counts the bytes it read from upstream (`note_bytes`, called where bodies are
read); a job that read more than `RELEASE_AFTER_BYTES` asks for one release, which runs
in the background after the job has answered: a full collection, then the trim in a thread
(ctypes releases the GIL for it).

A burst leaves the same behind without any large job (issue #22): thousands of requests at
once spread their objects over many allocator arenas, and cyclic garbage waits for a full
collection. So a process that served `QUIET_AFTER_REQUESTS` since its last release releases
once more when a whole `QUIET_INTERVAL_S` passes without a request (`run_when_quiet`): off
the request path, and never under steady load. Measured after a 20,000-request burst, the
front door gave back 40 of its 113 added MiB this way; the rest stays in pymalloc arenas that
one live object each still holds (docs/performance.md, "Issue #22: memory after a burst").
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar

log = logging.getLogger("switchboard.worker")

# Below this a job's buffers are ordinary; above it, it is worth a release afterwards.
RELEASE_AFTER_BYTES = 16 * 1024 * 1024
# A burst worth a release once it has passed, and how long "passed" is.
QUIET_AFTER_REQUESTS = 1_000
QUIET_INTERVAL_S = 5.0


class Footprint:
    """Upstream bytes one job read (its task and the tasks it starts share it)."""

    __slots__ = ("bytes_read",)

    def __init__(self) -> None:
        self.bytes_read = 0


_footprint: ContextVar[Footprint | None] = ContextVar("switchboard_footprint", default=None)


def track() -> Footprint:
    """Count what the current task (a job) reads from now on."""
    footprint = Footprint()
    _footprint.set(footprint)
    return footprint


def note_bytes(size: int) -> None:
    """An upstream body of `size` bytes was held (or refused at that size)."""
    footprint = _footprint.get()
    if footprint is not None:
        footprint.bytes_read += size


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None elsewhere (musl, macOS): there the release only collects."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]  # type: ignore[attr-defined]  # a ctypes function
    trim.restype = ctypes.c_int  # type: ignore[attr-defined]
    return trim


class MemoryReleaser:
    """Releases memory after large jobs, at most one release at a time; jobs that end while
    one runs are covered by one more."""

    def __init__(
        self,
        threshold_bytes: int = RELEASE_AFTER_BYTES,
        *,
        quiet_after_requests: int = QUIET_AFTER_REQUESTS,
    ) -> None:
        self.threshold_bytes = threshold_bytes
        self.quiet_after_requests = quiet_after_requests
        self.releases = 0
        self.served = 0  # requests this process finished (a plain count: no clock per request)
        self._served_at_release = 0
        self._wanted = asyncio.Event()
        self._trim = _find_malloc_trim()

    def after_job(self, footprint: Footprint) -> None:
        if footprint.bytes_read >= self.threshold_bytes:
            self._wanted.set()

    def note_served(self) -> None:
        self.served += 1

    async def run_when_quiet(self, interval_s: float = QUIET_INTERVAL_S) -> None:
        """The background loop that releases once after a burst: many requests served since
        the last release, then none for a whole interval."""
        seen = self.served
        while True:
            await asyncio.sleep(interval_s)
            now = self.served
            if now == seen and now - self._served_at_release >= self.quiet_after_requests:
                self._served_at_release = now
                await self.release()
            seen = now

    async def run(self) -> None:
        """The background loop (a worker runs it for its lifetime)."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self.release()

    async def release(self) -> None:
        collected = gc.collect()
        trimmed = await asyncio.to_thread(self._trim, 0) if self._trim is not None else 0
        self.releases += 1
        log.debug(
            "released memory after a large job (%d collected, trimmed: %s)", collected, trimmed
        )
