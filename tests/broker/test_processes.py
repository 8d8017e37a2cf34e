"""The service as users run it: real `switchboard up | serve | worker` processes on a real
Redis, driven by the official `openai` client. Kills and signals are real too."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import anthropic
import openai
import pytest
from redis.asyncio import Redis

from tests.broker.harness import read_sse
from tests.broker.processes import (
    SWITCHBOARD,
    environment,
    free_port,
    held_requests,
    switchboard,
    wait_ready,
    worker_pids,
    write_config,
)
from tests.redis_helpers import REDIS_URL
from tests.waiting import eventually
from workers import redis_streams
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

# What Claude Code sends in `anthropic-beta` (its CLI's own list, abridged).
CLAUDE_CODE_BETAS = "claude-code-20250219,interleaved-thinking-2025-05-14"

pytestmark = pytest.mark.slow

T = TypeVar("T")
HELLO: Any = [{"role": "user", "content": "hello"}]
TEXT = "This is a fake reply from gpt-4o-mini."
FAST = {
    "claim_idle_ms": 2000,
    "renew_interval_ms": 300,
    "heartbeat_interval_s": 0.2,
    "worker_ttl_s": 1.5,
    "drain_timeout_s": 20,
}
SLOW_MODELS = """\
- model_name: slow-answer
  litellm_params:
    model: openai/gpt-4o-mini~latency={latency}
    api_base: {base}
    api_key: sk-fake
- model_name: slow-stream
  litellm_params:
    model: openai/gpt-4o-mini~chunk_delay={delay}~chunks={chunks}
    api_base: {base}
    api_key: sk-fake
"""


def slow_models(base: str, *, latency: float, delay: float, chunks: int) -> str:
    return SLOW_MODELS.format(base=base, latency=latency, delay=delay, chunks=chunks)


def clients(port: int, api_key: str = "sk-anything") -> tuple[openai.OpenAI, openai.AsyncOpenAI]:
    options: Any = {
        "base_url": f"http://127.0.0.1:{port}/v1",
        "api_key": api_key,
        "max_retries": 0,
        "timeout": 60,
    }
    return openai.OpenAI(**options), openai.AsyncOpenAI(**options)


async def in_thread(call: Callable[[], T]) -> T:
    return await asyncio.to_thread(call)


async def stream_text(client: openai.AsyncOpenAI, model: str) -> tuple[str, str, str]:
    """(request id, serving worker, streamed text) of a streamed completion."""
    raw = await client.chat.completions.with_raw_response.create(
        model=model, messages=HELLO, stream=True
    )
    text = ""
    async for chunk in raw.parse():
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return raw.headers["x-request-id"], raw.headers["x-switchboard-worker"], text


async def test_openai_sdk_against_up_with_two_workers_that_both_take_load(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    # Four slots per worker and twelve concurrent requests: both workers must serve some.
    settings = {**FAST, "worker_concurrency": 4}
    base = fake.base_url + "/v1"
    config = write_config(tmp_path, base, namespace, settings=settings)
    port = free_port()
    args = ("up", "--config", str(config), "--port", str(port), "--workers", "2")
    async with switchboard(*args, directory=tmp_path, redis_url=REDIS_URL) as up:
        await wait_ready(f"http://127.0.0.1:{port}", workers=2, processes=(up,))
        sync, client = clients(port)
        with sync:
            answer = await in_thread(
                lambda: sync.chat.completions.create(model="gpt-test", messages=HELLO)
            )
            assert answer.choices[0].message.content == TEXT
            assert answer.usage is not None and answer.usage.total_tokens > 0

            def stream() -> str:
                chunks = sync.chat.completions.create(model="gpt-test", messages=HELLO, stream=True)
                return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

            assert await in_thread(stream) == TEXT
        async with client:
            answer = await client.chat.completions.create(model="gpt-test", messages=HELLO)
            assert answer.choices[0].message.content == TEXT
            assert (await stream_text(client, "gpt-test"))[2] == TEXT

            async def served_by() -> str:
                raw = await client.chat.completions.with_raw_response.create(
                    model="slow", messages=HELLO
                )
                assert raw.parse().choices[0].message.content == TEXT
                return raw.headers["x-switchboard-worker"]

            workers = await asyncio.gather(*(served_by() for _ in range(12)))
        assert len(set(workers)) == 2
        assert await up.stop() == 0


async def test_kill_9_of_a_worker_loses_no_request_and_leaves_nothing_pending(
    fake: FakeUpstream, namespace: str, redis: Redis, tmp_path: Path
) -> None:
    # 70 requests, 40 slots per worker: once all are taken, each worker holds at least 30.
    settings = {**FAST, "worker_concurrency": 40}
    base = fake.base_url + "/v1"
    models = slow_models(base, latency=4, delay=0.1, chunks=40)
    config = write_config(tmp_path, base, namespace, settings=settings, extra_models=models)
    keys = Keys(namespace)
    lane = keys.lane("default")
    port = free_port()
    args = ("up", "--config", str(config), "--port", str(port), "--workers", "2")
    async with switchboard(*args, directory=tmp_path, redis_url=REDIS_URL) as up:
        await wait_ready(f"http://127.0.0.1:{port}", workers=2, processes=(up,))
        pids = await worker_pids(redis, namespace)
        _, client = clients(port)
        async with client:
            answers = [asyncio.create_task(_answer(client)) for _ in range(50)]
            # create() returns once the first chunk is written: every stream has started.
            raws = [
                await client.chat.completions.with_raw_response.create(
                    model="slow-stream", messages=HELLO, stream=True
                )
                for _ in range(20)
            ]
            texts = [asyncio.create_task(_read_stream(raw.parse())) for raw in raws]

            async def all_taken() -> bool:
                return int((await redis.xpending(lane, redis_streams.GROUP))["pending"]) == 70

            await eventually(all_taken, timeout_s=30, what="all 70 requests taken")
            consumers: Any = await redis.xinfo_consumers(lane, redis_streams.GROUP)
            assert sorted(int(c["pending"]) for c in consumers)[0] >= 30
            # The worker with the most streams: it holds at least 10 of them, and (holding
            # at least 30 entries of which at most 20 are streams) at least 10 answers.
            stream_ids = {raw.headers["x-request-id"] for raw in raws}
            streams_held = {}
            for consumer in consumers:
                name = consumer["name"].decode()
                streams_held[name] = len(await held_requests(redis, lane, name) & stream_ids)
            victim = max(streams_held, key=streams_held.__getitem__)
            # Freeze it first, so what it holds is exactly what it holds when it dies.
            (pid,) = [pid for worker, pid in pids.items() if worker == victim]
            os.kill(pid, signal.SIGSTOP)
            held = await held_requests(redis, lane, victim)
            os.kill(pid, signal.SIGKILL)

            done = await asyncio.wait_for(asyncio.gather(*answers), 60)
            streamed = await asyncio.wait_for(asyncio.gather(*texts), 60)
        # Every non-stream request completed; the dead worker's were finished elsewhere.
        assert all(text == TEXT for _, _, text in done)
        reclaimed = [worker for request_id, worker, _ in done if request_id in held]
        assert reclaimed and victim not in reclaimed
        # A stream the dead worker had started ends with worker_lost after a clean prefix;
        # every other stream is whole.
        for raw, (text, error) in zip(raws, streamed, strict=True):
            if raw.headers["x-request-id"] in held:
                assert error is not None and error.code == "worker_lost"
                assert TEXT.startswith(text)
            else:
                assert (text, error) == (TEXT, None)
        assert len(held & stream_ids) >= 10 and len(held - stream_ids) >= 10
        assert await redis.xlen(lane) == 0
        assert (await redis.xpending(lane, redis_streams.GROUP))["pending"] == 0
        assert await up.stop() == 0


async def _answer(client: openai.AsyncOpenAI) -> tuple[str, str, str]:
    raw = await client.chat.completions.with_raw_response.create(
        model="slow-answer", messages=HELLO
    )
    text = raw.parse().choices[0].message.content or ""
    return raw.headers["x-request-id"], raw.headers["x-switchboard-worker"], text


async def _read_stream(chunks: Any) -> tuple[str, openai.APIError | None]:
    text = ""
    try:
        async for chunk in chunks:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    except openai.APIError as exc:
        return text, exc
    return text, None


async def test_kill_9_of_a_front_door_mid_stream_resumes_whole_on_another(
    fake: FakeUpstream, namespace: str, redis: Redis, tmp_path: Path
) -> None:
    """A front door dies under its streams: the worker finishes them regardless (no one is
    left to cancel them), and each client resumes at another front door with Last-Event-ID,
    getting exactly the events it missed."""
    base = fake.base_url + "/v1"
    models = slow_models(base, latency=0.1, delay=0.1, chunks=20)
    config = write_config(tmp_path, base, namespace, settings=FAST, extra_models=models)
    ports = free_port(), free_port()
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    run: dict[str, Any] = {"directory": tmp_path, "redis_url": REDIS_URL}
    serve = ("serve", "--config", str(config), "--port")
    async with (
        switchboard(*serve, str(ports[0]), name="doomed", **run) as doomed,
        switchboard(*serve, str(ports[1]), name="survivor", **run) as survivor,
        switchboard("worker", "--config", str(config), name="worker", **run) as worker,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
    ):
        for url in urls:
            await wait_ready(url, workers=1, processes=(doomed, survivor, worker))
        body = {"model": "slow-stream", "messages": HELLO, "stream": True}
        responses = [await http.post(urls[0] + "/v1/chat/completions", json=body) for _ in range(5)]
        before = [await read_sse(response, limit=3) for response in responses]
        os.kill(doomed.pid, signal.SIGKILL)
        assert await doomed.wait() == -signal.SIGKILL
        for response in responses:
            response.close()

        for response, seen in zip(responses, before, strict=True):
            request_id = response.headers["x-request-id"]
            resume = f"{urls[1]}/v1/streams/{request_id}"
            async with http.get(resume, headers={"Last-Event-ID": seen[-1][0] or ""}) as rest:
                assert rest.status == 200
                after = await read_sse(rest)
            async with http.get(resume, params={"after": "0"}) as whole_response:
                whole = await read_sse(whole_response)
            assert seen + after == whole
            assert whole[-1][1] == "[DONE]"
            text = "".join(
                choice["delta"].get("content") or ""
                for _, data in whole[:-1]
                for choice in json.loads(data)["choices"]
            )
            assert text == TEXT
        assert fake.request_count == 5  # finished once each, never re-run
        assert worker.popen.poll() is None


async def test_sigterm_drains_front_door_and_worker_which_exit_0(
    fake: FakeUpstream, namespace: str, redis: Redis, tmp_path: Path
) -> None:
    base = fake.base_url + "/v1"
    models = slow_models(base, latency=1.5, delay=0.05, chunks=30)
    config = write_config(tmp_path, base, namespace, settings=FAST, extra_models=models)
    lane = Keys(namespace).lane("default")
    port = free_port()
    serve = ("serve", "--config", str(config), "--port", str(port))
    work = ("worker", "--config", str(config))
    async with (
        switchboard(*serve, directory=tmp_path, redis_url=REDIS_URL, name="serve") as door,
        switchboard(*work, directory=tmp_path, redis_url=REDIS_URL, name="worker") as worker,
    ):
        await wait_ready(f"http://127.0.0.1:{port}", workers=1, processes=(door, worker))
        _, client = clients(port)
        async with client:
            answers = [asyncio.create_task(_answer(client)) for _ in range(4)]
            streams_ = [asyncio.create_task(stream_text(client, "slow-stream")) for _ in range(4)]
            await asyncio.wait_for(fake.wait_for_requests(8), 30)
            door.send(signal.SIGTERM)
            worker.send(signal.SIGTERM)
            # The front door says so, just before it closes its listener.
            await eventually(lambda: "front door draining" in door.output(), what="the drain")
            # Draining: the front door takes no new connection (so readiness fails too)...
            async with aiohttp.ClientSession() as http:
                with pytest.raises(aiohttp.ClientConnectionError):
                    await http.get(f"http://127.0.0.1:{port}/health/readiness")
            # ...and finishes what it relays.
            done = await asyncio.wait_for(asyncio.gather(*answers, *streams_), 60)
        assert [text for _, _, text in done] == [TEXT] * 8
        assert await door.wait() == 0
        assert await worker.wait() == 0
    assert await redis.xlen(lane) == 0
    assert (await redis.xpending(lane, redis_streams.GROUP))["pending"] == 0
    assert await worker_pids(redis, namespace) == {}  # it said goodbye


async def test_a_worker_stopped_past_its_drain_timeout_leaves_the_rest_pending(
    fake: FakeUpstream, namespace: str, redis: Redis, tmp_path: Path
) -> None:
    """SIGTERM with a request longer than drain_timeout_s: the worker cancels it, exits 0 and
    leaves its entry pending; the next worker claims it and the client gets its answer."""
    base = fake.base_url + "/v1"
    models = slow_models(base, latency=4, delay=0.05, chunks=2)
    settings = {**FAST, "drain_timeout_s": 0.5}
    config = write_config(tmp_path, base, namespace, settings=settings, extra_models=models)
    lane = Keys(namespace).lane("default")
    port = free_port()
    run: dict[str, Any] = {"directory": tmp_path, "redis_url": REDIS_URL}
    work = ("worker", "--config", str(config))
    async with switchboard("serve", "--config", str(config), "--port", str(port), **run) as door:
        _, client = clients(port)
        async with client:
            async with switchboard(*work, name="first", **run) as first:
                await wait_ready(f"http://127.0.0.1:{port}", workers=1, processes=(door, first))
                first_ids = set(await worker_pids(redis, namespace))
                answer = asyncio.create_task(_answer(client))
                await asyncio.wait_for(fake.wait_for_requests(1), 30)
                first.send(signal.SIGTERM)
                assert await first.wait() == 0
            assert (await redis.xpending(lane, redis_streams.GROUP))["pending"] == 1
            assert not answer.done()
            async with switchboard(*work, name="second", **run):
                _, second_worker, text = await asyncio.wait_for(answer, 60)
        assert text == TEXT
    assert "left 1 requests pending for other workers" in first.output()
    assert (await redis.xpending(lane, redis_streams.GROUP))["pending"] == 0
    assert len(first_ids) == 1 and second_worker not in first_ids


@pytest.mark.parametrize("command", ["up", "serve", "worker"])
def test_an_invalid_config_exits_2_naming_the_bad_value(command: str, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: a\n"
        "    litellm_params: {model: openai/gpt-4o-mini, api_key: sk-x}\n"
        "  - model_name: b\n"
        "    litellm_params: {model: openai/gpt-4o-mini, api_key: sk-x, rpm: lots}\n"
    )
    result = subprocess.run(
        [SWITCHBOARD, command, "--config", str(config)],
        env=environment(REDIS_URL),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    # Every problem with its path and line (issue #16), then a one-line summary.
    assert "error: model_list[1].litellm_params.rpm (line 5): expected int" in result.stderr
    assert result.stderr.rstrip().endswith("would not start: 1 error, 0 warnings")


async def test_up_demo_serves_a_stream_on_an_embedded_redis(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    args = ("up", "--demo", "--port", str(port), "--data-dir", str(data))
    async with switchboard(*args, directory=tmp_path, redis_url=None) as up:
        ready = await wait_ready(
            f"http://127.0.0.1:{port}",
            workers=1,
            processes=(up,),
            key_file=data / "demo-master-key",
        )
        assert ready["redis"] == "ok"
        # The demo's master key is in its data directory, readable by its owner only.
        key_file = data / "demo-master-key"
        assert key_file.stat().st_mode & 0o077 == 0
        key = key_file.read_text(encoding="utf-8").strip()
        _, client = clients(port, key)
        async with client:
            _, _, text = await stream_text(client, "demo")
        assert text.startswith("This is a fake reply from gpt-4o")
        # Claude Code sends betas on every request: the demo drops them for its
        # OpenAI-shaped model (drop_params) instead of refusing them.
        claude = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", api_key=key)
        async with claude:
            betas = {"anthropic-beta": CLAUDE_CODE_BETAS}
            async with claude.messages.stream(
                model="demo", max_tokens=64, messages=HELLO, extra_headers=betas
            ) as stream:
                said = await stream.get_final_text()
        assert said.startswith("This is a fake reply from gpt-4o")
        _, stranger = clients(port, "sk-not-a-key")
        async with stranger:
            with pytest.raises(openai.AuthenticationError):
                await stranger.models.list()
        assert await up.stop() == 0
    output = up.output()
    assert "Redis: embedded" in output
    assert f"Demo master key (API, SDKs, console): in {key_file}" in output
    assert key not in output  # the file is named, the key never printed


async def test_up_demo_keeps_its_master_key_across_restarts(tmp_path: Path) -> None:
    from broker.demo_key import demo_master_key

    first, path = demo_master_key(tmp_path)
    assert demo_master_key(tmp_path) == (first, path)
    assert first.startswith("sk-demo-") and len(first) > 30
