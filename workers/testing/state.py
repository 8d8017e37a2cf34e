"""What one fake server remembers: requests, per-model counts, open streams, disconnects.

Every provider module shares one `FakeState` per server. It lives on the server's event loop;
other threads only read it, and wait on it through `asyncio.run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any

import msgspec
from aiohttp import web
from multidict import CIMultiDictProxy

from workers.testing.scenario import Scenario


class Timing(msgspec.Struct, frozen=True, kw_only=True):
    """Server-wide delays, so several fakes can stand for deployments of different speed."""

    latency_s: float = 0.0
    ttft_s: float = 0.0
    chunk_delay_s: float = 0.0
    # How long a batch (OpenAI's /v1/batches, Anthropic's Message Batches) waits before
    # its lines run: a provider's queue, kept short so tests see every status.
    batch_delay_s: float = 0.0
    # How long the answer to a batch's create call takes once the batch exists: a client
    # may die before it reads it (a test of finding that batch again).
    batch_answer_delay_s: float = 0.0

    def latency_for(self, scenario: Scenario) -> float:
        return self.latency_s if scenario.latency_s is None else scenario.latency_s

    def ttft_for(self, scenario: Scenario) -> float:
        return self.ttft_s if scenario.ttft_s is None else scenario.ttft_s

    def chunk_delay_for(self, scenario: Scenario) -> float:
        return self.chunk_delay_s if scenario.chunk_delay_s is None else scenario.chunk_delay_s


class RecordedRequest:
    """One request as the fake received it; `json` is decoded on first access."""

    __slots__ = ("method", "path", "query", "headers", "body", "received_s", "_json")

    def __init__(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: CIMultiDictProxy[str],
        body: bytes,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        # time.monotonic() on arrival, so a test can check the pause between attempts.
        self.received_s = time.monotonic()
        self._json: Any = msgspec.UNSET

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        if self._json is msgspec.UNSET:
            try:
                self._json = msgspec.json.decode(self.body) if self.body else None
            except msgspec.DecodeError:
                self._json = None
        return self._json

    def __repr__(self) -> str:
        return f"RecordedRequest({self.method} {self.path})"


class Disconnect(msgspec.Struct, frozen=True, kw_only=True):
    """A client that went away before the fake finished answering."""

    path: str
    model: str
    events_sent: int  # stream events written before the client left (0 if none)
    was_streaming: bool  # whether the response had started
    at: float  # time.monotonic()


class FakeState:
    def __init__(
        self,
        *,
        api_key: str | None = None,
        timing: Timing | None = None,
        record_limit: int | None = None,
    ) -> None:
        self.api_key = api_key
        self.timing = timing or Timing()
        self.requests: deque[RecordedRequest] = deque(maxlen=record_limit)
        self.request_count = 0
        self.model_counts: Counter[str] = Counter()
        self.disconnects: list[Disconnect] = []
        self.open_streams = 0
        self.is_closing = False
        self.ids = itertools.count(1)  # response and request ids, unique per server
        # Background work the server owns (its batches' runs), cancelled when it stops.
        self.tasks: set[asyncio.Task[None]] = set()
        # Stored Responses API responses by (account, id) (openai_responses_store.py).
        self.kept_responses: dict[tuple[str, str], Any] = {}
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    def accepts_key(self, key: str | None) -> bool:
        """Any non-empty key, unless the server was built with a specific one."""
        return bool(key) and (self.api_key is None or key == self.api_key)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` as the server's own task (a batch's run): cancelled on close."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel_tasks(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def record(self, recorded: RecordedRequest) -> None:
        self.requests.append(recorded)
        self.request_count += 1
        self._notify()

    def count_model(self, model: str) -> int:
        """Count one more request for `model`; returns its 1-based ordinal."""
        self.model_counts[model] += 1
        return self.model_counts[model]

    def record_disconnect(self, disconnect: Disconnect) -> None:
        # Shutdown cancels every handler; that is not a client leaving.
        if not self.is_closing:
            self.disconnects.append(disconnect)
            self._notify()

    def clear(self) -> None:
        """Forget requests, counts and disconnects (fail_first starts over)."""
        self.requests.clear()
        self.request_count = 0
        self.model_counts.clear()
        self.disconnects.clear()

    async def wait_for_requests(self, count: int) -> list[RecordedRequest]:
        """Wait until `count` requests arrived since the last clear."""
        await self._wait_until(lambda: self.request_count >= count)
        return list(self.requests)

    async def wait_for_disconnects(self, count: int = 1) -> list[Disconnect]:
        """Wait until `count` clients went away early since the last clear."""
        await self._wait_until(lambda: len(self.disconnects) >= count)
        return list(self.disconnects)

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _notify(self) -> None:
        if not self._waiters:
            return
        for predicate, waiter in list(self._waiters):
            if not waiter.done() and predicate():
                waiter.set_result(None)


class ClientWatch:
    """Records a disconnect when the handler it wraps ends because the client went away.

    With `handler_cancellation` on, aiohttp cancels a handler whose client closed the
    connection; a write to a closed connection raises ConnectionResetError instead.
    """

    __slots__ = ("state", "path", "model", "events_sent", "is_streaming")

    def __init__(self, state: FakeState, path: str, model: str) -> None:
        self.state = state
        self.path = path
        self.model = model
        self.events_sent = 0
        self.is_streaming = False

    def __enter__(self) -> ClientWatch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and issubclass(
            exc_type, (asyncio.CancelledError, ConnectionResetError)
        ):
            self.record_disconnect()

    def record_disconnect(self) -> None:
        self.state.record_disconnect(
            Disconnect(
                path=self.path,
                model=self.model,
                events_sent=self.events_sent,
                was_streaming=self.is_streaming,
                at=time.monotonic(),
            )
        )


async def record_request(request: web.Request, state: FakeState) -> bytes:
    """Read the body and record the request; returns the body.

    A client that gives up while its body is still being read is a disconnect too: a test
    with a short client timeout on a busy machine must not wait for one that never comes.
    """
    try:
        body = await request.read()
    except (asyncio.CancelledError, ConnectionResetError):
        ClientWatch(state, request.path, _model_in_path(request)).record_disconnect()
        raise
    state.record(
        RecordedRequest(request.method, request.path, request.query, request.headers, body)
    )
    return body


def _model_in_path(request: web.Request) -> str:
    """The model named by the path (Bedrock, Gemini, Azure), or "" when it is in the body."""
    info = request.match_info
    if "model_id" in info:
        return info["model_id"]
    if "target" in info:
        return info["target"].rpartition(":")[0]
    return info.get("deployment", "")
