"""`FakeUpstream`: one local aiohttp server hosting every provider fake on 127.0.0.1.

Use it inside a running loop (`async with FakeUpstream() as fake:`), from sync code
(`with FakeUpstream.in_thread() as fake:`), or as a process (`python -m workers.testing`).
Providers plug in through `PROVIDERS`: a module exposing `routes(state)` is one more line.
Their paths do not overlap, so one server can stand for all of them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from workers.testing import (
    anthropic,
    azure,
    bedrock,
    gemini,
    google_oauth,
    media,
    ollama,
    openai,
    vertex,
)
from workers.testing.state import Disconnect, FakeState, RecordedRequest, Timing

RouteFactory = Callable[[FakeState], list[web.RouteDef]]
PROVIDERS: dict[str, RouteFactory] = {
    "openai": openai.routes,
    "azure": azure.routes,
    "anthropic": anthropic.routes,
    "bedrock": bedrock.routes,
    "gemini": gemini.routes,
    "ollama": ollama.routes,
    # Claude on Vertex AI, and the Google OAuth token endpoint its credentials name.
    "vertex_ai": vertex.routes,
    "google_oauth": google_oauth.routes,
    # Not a provider: images for the adapters that fetch an image_url themselves.
    "media": media.routes,
}
# A hanging or slow handler gets this long to finish when the server stops, then is cancelled.
SHUTDOWN_TIMEOUT_S = 0.1
THREAD_START_TIMEOUT_S = 10.0
T = TypeVar("T")


def build_app(state: FakeState, providers: Iterable[str] = PROVIDERS) -> web.Application:
    app = web.Application()
    for name in providers:
        app.router.add_routes(PROVIDERS[name](state))
    return app


class _StateViews:
    """Read access to the server's state, shared by the in-loop and in-thread handles."""

    state: FakeState

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self.state.requests)

    @property
    def request_count(self) -> int:
        return self.state.request_count

    @property
    def model_counts(self) -> dict[str, int]:
        return dict(self.state.model_counts)

    @property
    def disconnects(self) -> list[Disconnect]:
        return list(self.state.disconnects)

    @property
    def open_streams(self) -> int:
        return self.state.open_streams

    def clear(self) -> None:
        self.state.clear()


class FakeUpstream(_StateViews):
    """A fake provider server on a free port (or `port`), answering per model-name scenario."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        providers: Iterable[str] = tuple(PROVIDERS),
        api_key: str | None = None,
        latency_s: float = 0.0,
        ttft_s: float = 0.0,
        chunk_delay_s: float = 0.0,
        batch_delay_s: float = 0.0,
        batch_answer_delay_s: float = 0.0,
        record_limit: int | None = None,
    ) -> None:
        timing = Timing(
            latency_s=latency_s,
            ttft_s=ttft_s,
            chunk_delay_s=chunk_delay_s,
            batch_delay_s=batch_delay_s,
            batch_answer_delay_s=batch_answer_delay_s,
        )
        self.state = FakeState(api_key=api_key, timing=timing, record_limit=record_limit)
        self.host = host
        self.port = port
        self._providers = tuple(providers)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """`http://host:port`; OpenAI clients want `base_url + "/v1"`, Azure clients this."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self.state.is_closing = False
        runner = web.AppRunner(
            build_app(self.state, self._providers),
            handler_cancellation=True,  # a client that leaves cancels its handler: we record it
            access_log=None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def close(self) -> None:
        if self._runner is not None:
            self.state.is_closing = True
            await self.state.cancel_tasks()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeUpstream:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_for_requests(self, count: int) -> list[RecordedRequest]:
        """Wait until `count` requests arrived since the last clear; bound it with a timeout."""
        return await self.state.wait_for_requests(count)

    async def wait_for_disconnects(self, count: int = 1) -> list[Disconnect]:
        """Wait until `count` clients left early since the last clear."""
        return await self.state.wait_for_disconnects(count)

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, **kwargs: Any) -> Iterator[ThreadedFakeUpstream]:
        """Run a FakeUpstream on its own loop in a background thread, for sync code."""
        threaded = ThreadedFakeUpstream(cls(**kwargs))
        threaded.start()
        try:
            yield threaded
        finally:
            threaded.stop()


class ThreadedFakeUpstream(_StateViews):
    """A FakeUpstream serving from a background thread; waits block with a timeout."""

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.state = fake.state
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return self.fake.base_url

    def start(self) -> None:
        self._thread.start()
        try:
            self._call(self.fake.start(), THREAD_START_TIMEOUT_S)
        except BaseException:
            self._stop_loop()
            raise

    def stop(self) -> None:
        try:
            self._call(self.fake.close(), THREAD_START_TIMEOUT_S)
        finally:
            self._stop_loop()

    def wait_for_requests(self, count: int, timeout_s: float = 10.0) -> list[RecordedRequest]:
        return self._call(self.state.wait_for_requests(count), timeout_s)

    def wait_for_disconnects(self, count: int = 1, timeout_s: float = 10.0) -> list[Disconnect]:
        return self._call(self.state.wait_for_disconnects(count), timeout_s)

    def _call(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(THREAD_START_TIMEOUT_S)
        self._loop.close()
