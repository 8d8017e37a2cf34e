"""The SDK's callbacks, set as LiteLLM's are, against the fake upstream: functions, a
CustomLogger's hooks, built-ins, redaction, and delivery that never fails a call."""

from __future__ import annotations

import asyncio
import datetime
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

import switchboard
from tests.local_http import serve
from workers import errors
from workers.sdk import callbacks as sdk_callbacks
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion

KEY = "sk-secret-test-key"
HELLO = [{"role": "user", "content": "hello there"}]


@pytest.fixture(autouse=True)
def clean_callbacks() -> Iterator[None]:
    yield
    switchboard.flush_callbacks()
    switchboard.success_callback = []
    switchboard.failure_callback = []
    switchboard.callbacks = []
    switchboard.turn_off_message_logging = False
    switchboard.callback_settings = {}


def _base(fake: FakeUpstream) -> dict[str, Any]:
    return {"api_key": KEY, "api_base": fake.base_url + "/v1"}


class Recorder(switchboard.CustomLogger):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any, Any]] = []
        self.threads: set[str] = set()

    def log_pre_api_call(self, model: str, messages: Any, kwargs: dict[str, Any]) -> None:
        self.events.append(("pre", model, messages))

    def log_success_event(self, kwargs: Any, response_obj: Any, start: Any, end: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(("success", kwargs, response_obj))

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start: Any, end: Any
    ) -> None:
        self.events.append(("async_success", kwargs, response_obj))

    async def async_log_failure_event(
        self, kwargs: Any, response_obj: Any, start: Any, end: Any
    ) -> None:
        self.events.append(("async_failure", kwargs, response_obj))


async def test_success_callback_gets_litellm_kwargs_response_and_times(
    fake: FakeUpstream,
) -> None:
    seen: list[tuple[Any, ...]] = []
    switchboard.success_callback = [lambda *args: seen.append(args)]
    response = await switchboard.acompletion(
        "openai/gpt-4o-mini", HELLO, metadata={"trace": "t1"}, temperature=0.5, **_base(fake)
    )
    assert isinstance(response, ChatCompletion)
    assert response.usage is not None
    await asyncio.to_thread(switchboard.flush_callbacks)
    [(kwargs, response_obj, start, end)] = seen
    assert kwargs["model"] == "openai/gpt-4o-mini"
    assert kwargs["messages"] == HELLO
    assert kwargs["optional_params"]["temperature"] == 0.5
    assert kwargs["litellm_params"]["metadata"]["trace"] == "t1"
    assert kwargs["response_cost"] == response.hidden_params["cost_usd"] > 0
    assert kwargs["cache_hit"] is False
    assert isinstance(start, datetime.datetime) and start <= end
    # Either way LiteLLM's callbacks read a response.
    assert response_obj["usage"]["prompt_tokens"] == response.usage.prompt_tokens
    assert response_obj.choices[0]["message"]["content"] == response.choices[0].message.content
    # Credentials never reach a callback.
    assert KEY not in orjson.dumps(kwargs, default=str).decode()


async def test_custom_logger_gets_pre_call_sync_and_async_hooks(fake: FakeUpstream) -> None:
    recorder = Recorder()
    switchboard.callbacks = [recorder]
    await switchboard.acompletion("openai/gpt-4o-mini", HELLO, **_base(fake))
    await asyncio.to_thread(switchboard.flush_callbacks)
    kinds = [kind for kind, *_ in recorder.events]
    assert kinds == ["pre", "success", "async_success"]
    # The sync hook ran in a thread, not on the caller's loop.
    assert threading.current_thread().name not in recorder.threads


async def test_a_stream_is_logged_once_assembled(fake: FakeUpstream) -> None:
    recorder = Recorder()
    switchboard.callbacks = [recorder]
    stream = await switchboard.acompletion(
        "openai/gpt-4o-mini~chunks=5", HELLO, stream=True, **_base(fake)
    )
    assert isinstance(stream, switchboard.ChatStream)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    await asyncio.to_thread(switchboard.flush_callbacks)
    [(_, kwargs, response)] = [e for e in recorder.events if e[0] == "async_success"]
    assert kwargs["stream"] is True
    assert response.choices[0]["message"]["content"] == text
    assert kwargs["standard_logging_object"]["completion_tokens"] > 0


async def test_failure_callback_gets_the_exception(fake: FakeUpstream) -> None:
    seen: list[dict[str, Any]] = []
    switchboard.failure_callback = [lambda kwargs, *_: seen.append(kwargs)]
    with pytest.raises(errors.RateLimited):
        await switchboard.acompletion("openai/gpt-4o-mini~status=429", HELLO, **_base(fake))
    await asyncio.to_thread(switchboard.flush_callbacks)
    [kwargs] = seen
    assert isinstance(kwargs["exception"], errors.RateLimited)
    assert kwargs["standard_logging_object"]["status"] == "failure"
    assert kwargs["standard_logging_object"]["status_code"] == 429


async def test_a_failing_callback_never_fails_the_call(fake: FakeUpstream) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("collector exploded")

    recorder = Recorder()
    switchboard.success_callback = [broken]
    switchboard.callbacks = [recorder]
    response = await switchboard.acompletion("openai/gpt-4o-mini", HELLO, **_base(fake))
    assert isinstance(response, ChatCompletion) and response.choices
    await asyncio.to_thread(switchboard.flush_callbacks)
    assert (
        sdk_callbacks.dispatcher.failed[
            "test_a_failing_callback_never_fails_the_call.<locals>.broken"
        ]
        >= 1
    )
    assert any(kind == "async_success" for kind, *_ in recorder.events)


async def test_turn_off_message_logging_redacts_messages_and_response(fake: FakeUpstream) -> None:
    seen: list[tuple[Any, ...]] = []
    switchboard.success_callback = [lambda *args: seen.append(args)]
    switchboard.turn_off_message_logging = True
    await switchboard.acompletion("openai/gpt-4o-mini", HELLO, **_base(fake))
    await asyncio.to_thread(switchboard.flush_callbacks)
    [(kwargs, response_obj, *_)] = seen
    dumped = orjson.dumps(kwargs, default=str).decode() + orjson.dumps(response_obj).decode()
    assert "hello there" not in dumped
    assert kwargs["messages"][0]["content"] == "redacted-by-switchboard"
    assert response_obj["choices"][0]["message"]["content"] == "redacted-by-switchboard"
    assert kwargs["standard_logging_object"]["prompt_tokens"] > 0  # figures stay


async def test_jsonl_builtin_writes_one_line_per_call(fake: FakeUpstream, tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    switchboard.callback_settings = {"jsonl": {"path": str(path)}}
    switchboard.success_callback = ["jsonl"]
    switchboard.failure_callback = ["jsonl"]
    await switchboard.aembedding("openai/text-embedding-3-small", "hi", **_base(fake))
    with pytest.raises(errors.SwitchboardError):
        await switchboard.acompletion("openai/gpt-4o-mini~status=500", HELLO, **_base(fake))
    await asyncio.to_thread(switchboard.flush_callbacks)
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(x["call_type"], x["status"]) for x in lines] == [
        ("embedding", "success"),
        ("completion", "failure"),
    ]
    assert lines[0]["prompt_tokens"] > 0


async def test_webhook_builtin_retries_until_delivered(fake: FakeUpstream) -> None:
    received: list[dict[str, Any]] = []
    attempts = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        if attempts <= 3:  # down a while: every event waits, none is lost
            return web.Response(status=503)
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serve(app) as base_url:
        switchboard.callback_settings = {
            "webhook": {"url": f"{base_url}/hook", "headers": {"x-token": "t"}}
        }
        switchboard.success_callback = ["webhook"]
        for _ in range(3):
            await switchboard.acompletion("openai/gpt-4o-mini", HELLO, **_base(fake))
        await asyncio.to_thread(switchboard.flush_callbacks, 30)
    assert attempts == 6
    assert len({payload["id"] for payload in received}) == len(received) == 3
    assert all(p["status"] == "success" and p["model"] == "openai/gpt-4o-mini" for p in received)


async def test_no_callback_means_no_delivery_thread_work(fake: FakeUpstream) -> None:
    offered = sdk_callbacks.dispatcher.offered
    await switchboard.acompletion("openai/gpt-4o-mini", HELLO, **_base(fake))
    assert sdk_callbacks.dispatcher.offered == offered


def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    from workers.hooks.dispatch import CallbackDispatcher
    from workers.hooks.events import CallEvent
    from workers.hooks.registry import Callbacks

    dispatcher = CallbackDispatcher(Callbacks(success_callback=[print]), max_queue=2)
    for i in range(5):
        dispatcher.offer(
            CallEvent(
                call_type="completion",
                request_id=str(i),
                model="m",
                start_time=0.0,
                end_time=0.0,
                request={},
            )
        )
    assert dispatcher.depth == 2 and dispatcher.dropped == 3
