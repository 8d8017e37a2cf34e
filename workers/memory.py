"""Giving memory back after a large job (issue #13: a worker's RSS went from 52 to 367 MB
after one large reply and stayed there).

Freed Python objects go back to the allocator, not to the system: glibc keeps freed heap
pages for reuse, and after it frees one large mapped block it raises its mmap threshold, so
later large buffers come from the heap too. `malloc_trim(0)` hands the free pages back.
Each job counts the bytes it read from upstream (`note_bytes`, called where bodies are
read); a job that read more than `RELEASE_AFTER_BYTES` asks for one release, which runs
in the background after the job has answered: a full collection, then the trim in a thread
(ctypes releases the GIL for it).
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

    def __init__(self, threshold_bytes: int = RELEASE_AFTER_BYTES) -> None:
        self.threshold_bytes = threshold_bytes
        self.releases = 0
        self._wanted = asyncio.Event()
        self._trim = _find_malloc_trim()

    def after_job(self, footprint: Footprint) -> None:
        if footprint.bytes_read >= self.threshold_bytes:
            self._wanted.set()

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
