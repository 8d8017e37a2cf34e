"""The SDK's callbacks, set as LiteLLM's are (issue #19):

    switchboard.success_callback = [my_function]     # (kwargs, response, start, end)
    switchboard.failure_callback = ["jsonl"]         # a built-in, set up by callback_settings
    switchboard.callbacks = [MyLogger()]             # a CustomLogger
    switchboard.turn_off_message_logging = True
    switchboard.callback_settings = {"jsonl": {"path": "calls.jsonl"}}

Events go to a bounded queue drained by a delivery task on its own thread and event loop,
so a callback never slows or fails a call, whichever loop (or none) the caller runs.
`flush_callbacks()` waits until what was queued is delivered. With no callback set, a call
pays one attribute check.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from workers.deployment import Secret
from workers.errors import InternalError, SwitchboardError
from workers.hooks.builtin import JsonlLogger, WebhookLogger
from workers.hooks.custom_logger import CustomLogger
from workers.hooks.dispatch import CallbackDispatcher
from workers.hooks.events import CallEvent
from workers.hooks.registry import Callbacks, Factory
from workers.sdk.assemble import stream_chunk_builder
from workers.settings.hooks import CallbackSettings

# The module attributes `switchboard` forwards here (see switchboard/__init__.py).
SETTINGS = frozenset(
    {
        "success_callback",
        "failure_callback",
        "callbacks",
        "turn_off_message_logging",
        "callback_settings",
    }
)
_CLOSE_TIMEOUT_S = 5.0


class _SdkCallbacks(Callbacks):
    """The SDK's lists, plus `callback_settings` as a plain mapping callers assign."""

    def __init__(self) -> None:
        super().__init__(builtins=_builtin_factories(self))
        self.callback_settings: Mapping[str, Any] = {}

    def settings(self) -> CallbackSettings:
        return msgspec.convert(
            dict(self.callback_settings), CallbackSettings, str_keys=True, dec_hook=_secret
        )


def _secret(kind: type, value: Any) -> Any:
    if kind is Secret and isinstance(value, str):
        return Secret(value)
    raise NotImplementedError(kind)


def _builtin_factories(owner: _SdkCallbacks) -> dict[str, Factory]:
    def jsonl() -> CustomLogger:
        settings = owner.settings().jsonl
        if settings is None:
            raise ValueError(
                'the jsonl callback needs callback_settings = {"jsonl": {"path": ...}}'
            )
        return JsonlLogger(settings)

    def webhook() -> CustomLogger:
        settings = owner.settings().webhook
        if settings is None:
            raise ValueError(
                'the webhook callback needs callback_settings = {"webhook": {"url": ...}}'
            )
        return WebhookLogger(settings)

    return {"jsonl": jsonl, "webhook": webhook}


current = _SdkCallbacks()


class _DeliveryThread:
    """The thread and loop the SDK's delivery task runs on, started at the first event."""

    def __init__(self, dispatcher: CallbackDispatcher) -> None:
        self.dispatcher = dispatcher
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None

    def ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._run, args=(loop, ready), name="switchboard-callbacks", daemon=True
                )
                self._thread.start()
                ready.wait()
                asyncio.run_coroutine_threadsafe(self._start(), loop).result()
                self._loop = loop
            return self._loop

    async def _start(self) -> None:
        self._task = asyncio.create_task(self.dispatcher.run(), name="callbacks")

    async def _stop(self) -> None:
        """Deliver what is queued, close the built-ins, then end the delivery task."""
        try:
            await self.dispatcher.aclose()
        finally:
            task, self._task = self._task, None
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def flush(self, timeout_s: float) -> None:
        loop = self._loop
        if loop is not None:
            future = asyncio.run_coroutine_threadsafe(self.dispatcher.flush(timeout_s), loop)
            future.result(timeout_s + 1)

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._stop(), loop)
            future.result(_CLOSE_TIMEOUT_S + 1)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_CLOSE_TIMEOUT_S)
            loop.close()


dispatcher = CallbackDispatcher(current)
_delivery = _DeliveryThread(dispatcher)
atexit.register(_delivery.close)


def flush_callbacks(timeout_s: float = 10.0) -> None:
    """Block until every event queued so far reached its callbacks (or `timeout_s`)."""
    _delivery.flush(timeout_s)


def get_setting(name: str) -> Any:
    return getattr(current, name)


def set_setting(name: str, value: Any) -> None:
    if name != "turn_off_message_logging" and name != "callback_settings":
        value = list(value)
    setattr(current, name, value)


class CallRecord:
    """One SDK call as the callbacks will see it; made only when a callback is set."""

    __slots__ = ("call_type", "model", "request", "stream", "start_time", "request_id", "chunks")

    def __init__(self, call_type: str, model: str, request: dict[str, Any], stream: bool) -> None:
        self.call_type = call_type
        self.model = model
        self.request = request
        self.stream = stream
        self.start_time = time.time()
        self.request_id = f"sdk-{uuid.uuid4().hex}"
        self.chunks: list[Any] = []
        if current.callbacks:
            dispatcher.offer((model, request.get("messages"), {"litellm_call_id": self.request_id}))

    def succeeded(self, response: Any, hidden_params: Mapping[str, Any], usage: Any) -> None:
        self._offer(response=response, hidden=hidden_params, usage=usage)

    def stream_ended(self, hidden_params: Mapping[str, Any], usage: Any) -> None:
        """A stream read to its end: the callbacks get it assembled into one response."""
        chunks, self.chunks = self.chunks, []
        response = stream_chunk_builder(chunks) if chunks else None
        self._offer(response=response, hidden=hidden_params, usage=usage)

    def failed(self, exc: BaseException) -> None:
        error = exc if isinstance(exc, SwitchboardError) else InternalError(str(exc))
        self._offer(error=error)

    def _offer(
        self,
        *,
        response: Any = None,
        hidden: Mapping[str, Any] | None = None,
        usage: Any = None,
        error: SwitchboardError | None = None,
    ) -> None:
        hidden = hidden or {}
        _delivery.ensure()
        dispatcher.offer(
            CallEvent(
                call_type=self.call_type,
                request_id=self.request_id,
                model=self.model,
                start_time=self.start_time,
                end_time=time.time(),
                request=self.request,
                stream=self.stream,
                response=response,
                error=error,
                deployment=str(hidden.get("deployment") or ""),
                provider=str(hidden.get("provider") or ""),
                prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
                cost_usd=hidden.get("cost_usd"),
            )
        )


def start(call_type: str, model: str, request: dict[str, Any], stream: bool) -> CallRecord | None:
    """A record of the call about to run, or None when no callback would see it."""
    if not current.is_active:
        return None
    _delivery.ensure()
    return CallRecord(call_type, model, request, stream)
