"""An in-process Switchboard for tests: front doors and workers in the test's event loop,
talking through a real Redis, to the fake upstream."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from redis.asyncio import Redis

from broker.app import create_app, front_door_runner
from broker.config.loader import Config, load_config_text
from broker.hooks import service_hooks
from broker.routes.keys import FRONT_DOOR
from broker.tracing import FRONT_TRACING
from tests.redis_helpers import REDIS_URL
from tests.waiting import eventually
from workers.http import HttpClient
from workers.routing.plan import build_plan
from workers.runtime.options import RuntimeOptions
from workers.runtime.process import routed_worker, run_routed_worker
from workers.runtime.worker import Worker

FAST_CLAIMS = {
    "claim_idle_ms": 1000,
    "renew_interval_ms": 200,
    "heartbeat_interval_s": 0.2,
    "worker_ttl_s": 1.0,
}


def config_text(
    upstream_v1: str,
    namespace: str,
    *,
    settings: dict[str, Any] | None = None,
    extra_models: str = "",
    general: str = "",
) -> str:
    lines = [
        f"  {key}: {value}" for key, value in {"namespace": namespace, **(settings or {})}.items()
    ]
    return (
        textwrap.dedent(
            f"""\
        model_list:
          - model_name: gpt-test
            litellm_params:
              model: openai/gpt-4o-mini
              api_base: {upstream_v1}
              api_key: sk-fake
            model_info:
              base_model: gpt-4o-mini
          - model_name: slow
            litellm_params:
              model: openai/gpt-4o-mini~chunk_delay=0.05~chunks=20~latency=0.5
              api_base: {upstream_v1}
              api_key: sk-fake
          - model_name: groq-test
            litellm_params:
              model: groq/llama-3.1-8b-instant
              api_base: {upstream_v1}
              api_key: sk-fake
          - model_name: embed-test
            litellm_params:
              model: openai/text-embedding-3-small
              api_base: {upstream_v1}
              api_key: sk-fake
        """
        )
        + textwrap.indent(textwrap.dedent(extra_models), "  ")
        + (
            "router_settings:\n  num_retries: 0\n"
            + general
            + "switchboard_settings:\n"
            + "\n".join(lines)
            + "\n"
        )
    )


def make_config(upstream_v1: str, namespace: str, **kwargs: Any) -> Config:
    return load_config_text(config_text(upstream_v1, namespace, **kwargs))


def runtime_options(config: Config, **overrides: Any) -> RuntimeOptions:
    options = RuntimeOptions.from_settings(config.switchboard_settings)
    return msgspec.structs.replace(options, **{"block_ms": 200, **overrides})


class RunningWorker:
    def __init__(
        self,
        worker: Worker,
        task: asyncio.Task[None],
        stopping: asyncio.Event,
        http: HttpClient,
        redis: Redis,
    ) -> None:
        self.worker = worker
        self.task = task
        self.stopping = stopping
        self.http = http
        self.redis = redis

    async def stop(self) -> None:
        self.stopping.set()
        await self.task
        await self.http.close()
        await self.redis.aclose()

    async def stop_if_running(self) -> None:
        if not self.task.done():
            await self.stop()

    async def crash(self) -> None:
        """Die without draining or acking, like a killed process."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.http.close()
        await self.redis.aclose()


async def start_worker(
    config: Config, redis_url: str = REDIS_URL, **overrides: Any
) -> RunningWorker:
    options = runtime_options(config, **overrides)
    http = HttpClient(max_reply_bytes=options.max_reply_bytes)
    redis = Redis.from_url(redis_url, max_connections=64)
    plan = build_plan(config.deployments, config.model_list, config.router_settings)
    # The config's callbacks, as `switchboard worker` sets them up (issue #19).
    worker, figures = routed_worker(redis, http, plan, options, hooks=service_hooks(config))
    stopping = asyncio.Event()
    task = asyncio.create_task(run_routed_worker(worker, figures, plan, stopping))
    return RunningWorker(worker, task, stopping, http, redis)


class RunningFrontDoor:
    def __init__(self, app: web.Application, runner: web.AppRunner, url: str) -> None:
        self.app = app
        self.runner = runner
        self.url = url

    @property
    def front(self) -> Any:
        return self.app[FRONT_DOOR]

    async def stop(self) -> None:
        self.front.is_draining = True
        await self.runner.cleanup()


async def start_front_door(config: Config, redis_url: str = REDIS_URL) -> RunningFrontDoor:
    app = create_app(config, redis_url)
    # The production runner (timeouts, connection cap, JSON for malformed requests).
    runner = front_door_runner(app, config.switchboard_settings.http, shutdown_timeout_s=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return RunningFrontDoor(app, runner, f"http://127.0.0.1:{port}")


@contextlib.asynccontextmanager
async def service(
    config: Config, *, workers: int = 1, front_doors: int = 1, **worker_overrides: Any
) -> AsyncIterator[tuple[list[RunningFrontDoor], list[RunningWorker]]]:
    # An exit stack so that one part failing to stop still stops the rest, and the failure shows.
    async with contextlib.AsyncExitStack() as stack:
        doors: list[RunningFrontDoor] = []
        for _ in range(front_doors):
            door = await start_front_door(config)
            stack.push_async_callback(door.stop)
            doors.append(door)
        running: list[RunningWorker] = []
        for _ in range(workers):
            worker = await start_worker(config, **worker_overrides)
            stack.push_async_callback(worker.stop_if_running)
            running.append(worker)
        # Leaving: first the front doors' span records onto the stream (they flush them
        # every export_interval_s), so that the workers, stopping next, deliver them.
        stack.push_async_callback(flush_front_spans, doors)
        yield doors, running


async def flush_front_spans(doors: list[RunningFrontDoor]) -> None:
    for door in doors:
        tracing = door.app.get(FRONT_TRACING)
        if tracing is not None:
            await tracing.flush()


async def post(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], **kwargs: Any
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    async with session.post(url + "/v1/chat/completions", json=body, **kwargs) as response:
        payload = await response.json(content_type=None)
        return response.status, payload, response


async def read_sse(
    response: aiohttp.ClientResponse, limit: int | None = None
) -> list[tuple[str | None, str]]:
    """(id, data) of each event, up to `limit` events."""
    events: list[tuple[str | None, str]] = []
    event_id: str | None = None
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            events.append((event_id, line[6:]))
            event_id = None
            if limit is not None and len(events) >= limit:
                break
    return events


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Poll an async condition until it holds; fail after a generous `timeout_s` (the shared
    `tests.waiting.eventually`, under the name these tests know)."""
    await eventually(predicate, timeout_s=timeout_s)
