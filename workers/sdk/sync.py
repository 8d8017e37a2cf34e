"""Runs the async engine for synchronous callers on one background event loop.

`completion()` must work from plain scripts and from code that already runs a loop (a
notebook), where `asyncio.run` is not allowed. One long-lived loop thread serves every sync
call, so upstream keep-alive connections are reused between calls.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_CLOSE_TIMEOUT_S = 5.0


class _LoopThread:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._loop, ready),
                    name="switchboard-sync",
                    daemon=True,
                )
                self._thread.start()
                ready.wait()
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        from workers.http import close_shared_client

        future = asyncio.run_coroutine_threadsafe(close_shared_client(), loop)
        try:
            future.result(_CLOSE_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_CLOSE_TIMEOUT_S)
            loop.close()


_runner = _LoopThread()
atexit.register(_runner.close)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the background loop and wait for its result in this thread."""
    future = asyncio.run_coroutine_threadsafe(coro, _runner.loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


def iterate_sync(source: AsyncIterator[T]) -> Iterator[T]:
    """A blocking iterator over an async iterator that lives on the background loop."""
    try:
        while True:
            try:
                yield run_sync(_next(source))
            except StopAsyncIteration:
                return
    finally:
        close = getattr(source, "aclose", None)
        if close is not None:
            run_sync(close())


async def _next(source: AsyncIterator[T]) -> T:
    return await source.__anext__()


def shutdown() -> None:
    """Close the background loop and its HTTP client (also done at interpreter exit)."""
    _runner.close()
