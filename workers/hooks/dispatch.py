"""`CallbackDispatcher`: finished calls' events delivered to callbacks off the request path.

`offer` is all a request pays: an append under a lock, from any thread, never blocking and
never raising. When the queue is full the oldest event is dropped and counted (a collector
that is down must not grow a worker's memory without bound). One task, owned by whoever
runs `run()` (the worker's Supervisor, or the SDK's delivery thread), takes events in
order and calls each callback; a callback that raises or hangs past `callback_timeout_s`
is logged and counted, and delivery goes on. Sync hooks run in a thread, so a slow one
never stalls the loop that serves requests.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from workers.hooks.custom_logger import CustomLogger, overrides
from workers.hooks.events import CallEvent, Response, view
from workers.hooks.registry import Callbacks

log = logging.getLogger("switchboard.callbacks")

DEFAULT_MAX_QUEUE = 10_000
DEFAULT_CALLBACK_TIMEOUT_S = 30.0

# A pre-call event: the model, the messages and the kwargs, delivered before the result.
PreCall = tuple[str, Any, dict[str, Any]]


class Deferred(Protocol):
    """What the service queues: the event is built on the delivery task, off the path."""

    def event(self) -> CallEvent: ...


Item = CallEvent | PreCall | Deferred


class CallbackDispatcher:
    def __init__(
        self,
        callbacks: Callbacks,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        callback_timeout_s: float = DEFAULT_CALLBACK_TIMEOUT_S,
    ) -> None:
        self.callbacks = callbacks
        # Applied to each event before the callbacks see it (logging_only guardrails).
        self.transform: Callable[[CallEvent], CallEvent] | None = None
        self.max_queue = max_queue
        self.callback_timeout_s = callback_timeout_s
        self._queue: collections.deque[Item] = collections.deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        # Events whose delivery finished (every callback returned, failed or timed out).
        self._done = 0
        # Counters read by the metrics collector (workers/hooks/hook_metrics.py).
        self.offered = 0
        self.dropped = 0
        self.delivered: collections.Counter[str] = collections.Counter()
        self.failed: collections.Counter[str] = collections.Counter()

    @property
    def is_active(self) -> bool:
        """Whether offered events go anywhere (the SDK's lists can change at any time)."""
        return self.callbacks.is_active

    @property
    def depth(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ the request's side

    def offer(self, event: Item) -> None:
        """Queue an event for delivery; drops the oldest past `max_queue`. Never blocks."""
        if not self.is_active:
            return
        with self._lock:
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self.offered += 1
        self._notify()

    def _notify(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return  # not running yet: run() looks at the queue when it starts
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------------ the delivery task

    async def run(self) -> None:
        """Deliver events until cancelled (run it under an owner that restarts it)."""
        self._loop = asyncio.get_running_loop()
        self._wake = wake = asyncio.Event()
        self._progress = progress = asyncio.Event()
        while True:
            item = self._take()
            if item is None:
                await wake.wait()
                wake.clear()
                continue
            try:
                await self._deliver(item)
            finally:
                self._done += 1
                progress.set()

    def _take(self) -> Item | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    async def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until every event offered so far is delivered (tests; the SDK at exit)."""
        target = self.offered
        progress = self._progress
        if progress is None:
            raise RuntimeError("the callback dispatcher is not running")
        async with asyncio.timeout(timeout_s):
            while self._done + self.dropped < target:
                progress.clear()
                await progress.wait()

    async def _deliver(self, item: Item) -> None:
        if isinstance(item, tuple):
            return await self._deliver_pre_call(*item)
        if not isinstance(item, CallEvent):
            try:
                item = item.event()
            except Exception:
                self.failed["event"] += 1
                log.exception("a finished request could not be made into an event")
                return
        if self.transform is not None:
            item = self.transform(item)
        redact = self.callbacks.turn_off_message_logging
        kwargs, response = view(item, redact=redact)
        args = (kwargs, response, kwargs["start_time"], kwargs["end_time"])
        ok = item.is_success
        functions = self.callbacks.success_callback if ok else self.callbacks.failure_callback
        for given in functions:
            target = self._resolve(given)
            if isinstance(target, CustomLogger):
                await self._logger(target, ok, args)
            elif target is not None:
                await self._call(_name(target), target, args)
        for given in self.callbacks.callbacks:
            target = self._resolve(given)
            if isinstance(target, CustomLogger):
                await self._logger(target, ok, args)

    def _resolve(self, given: Any) -> Any:
        """The callback an entry names; None (logged, counted) if it cannot be had."""
        try:
            return self.callbacks.resolve(given)
        except Exception:
            self.failed[str(given)] += 1
            log.exception("callback %r cannot be loaded", given)
            return None

    async def _logger(
        self, logger: CustomLogger, is_success: bool, args: tuple[Any, Any, Any, Any]
    ) -> None:
        sync, asynchronous = (
            ("log_success_event", "async_log_success_event")
            if is_success
            else ("log_failure_event", "async_log_failure_event")
        )
        name = type(logger).__name__
        for hook in (sync, asynchronous):
            if overrides(logger, hook):
                await self._call(name, getattr(logger, hook), args)

    async def _deliver_pre_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        for given in self.callbacks.callbacks:
            logger = self._resolve(given)
            if not isinstance(logger, CustomLogger):
                continue
            name = type(logger).__name__
            for hook in ("log_pre_api_call", "async_log_pre_api_call"):
                if overrides(logger, hook):
                    await self._call(name, getattr(logger, hook), (model, messages, kwargs))

    async def _call(self, name: str, hook: Callable[..., Any], args: tuple[Any, ...]) -> None:
        # A built-in that retries (webhook) says how long its retries may take.
        owner = getattr(hook, "__self__", None)
        timeout_s = max(self.callback_timeout_s, getattr(owner, "delivery_timeout_s", 0.0))
        try:
            async with asyncio.timeout(timeout_s):
                if inspect.iscoroutinefunction(hook):
                    await hook(*args)
                else:
                    await asyncio.to_thread(hook, *args)
        except Exception:
            self.failed[name] += 1
            log.exception("callback %s failed", name)
        else:
            self.delivered[name] += 1

    async def aclose(self, grace_s: float = 5.0) -> None:
        """Deliver what is queued (within `grace_s`), then close the built-ins that hold a
        file or a connection. The delivery task must still be running."""
        try:
            await self.flush(grace_s)
        except TimeoutError:
            log.warning("callbacks: %d events left undelivered at shutdown", self.depth)
        for logger in self.callbacks.loggers():
            close = getattr(logger, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception:
                    log.exception("closing callback %s failed", type(logger).__name__)


def _name(target: Any) -> str:
    return str(getattr(target, "__qualname__", None) or type(target).__name__)


__all__ = ["CallbackDispatcher", "Response"]
