"""Operator limits win (issue #13, item 4): a request body may shorten its deadline and ask
for fewer retries, never lengthen or add past the config, and never choose its own
fallbacks; a passed deadline is always a 504 `timeout_error` naming the limit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.broker.harness import read_sse, service
from tests.broker.routing_setup import HELLO, deployment, routing_config
from workers.testing.server import FakeUpstream

# Bounds each wait; the config's limit is 1 s and the body asks for 100 s.
WAIT_S = 10.0


def limits_config(fake: FakeUpstream, namespace: str, **router: Any) -> Any:
    base = fake.base_url + "/v1"
    models = [
        deployment("hang", base, "m~hang"),
        # Fails at once; Retry-After 0 so retries do not wait.
        deployment("flaky", base, "m~status=500~retry_after=0"),
        deployment("other", base, "other"),
    ]
    settings = router.pop("settings", {})
    return routing_config(
        namespace, models, settings={"request_timeout_s": 1, **settings}, **router
    )


async def ask(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """The status and the error (for a stream: the error its first event carries)."""
    async with session.post(url + "/v1/chat/completions", json=body) as response:
        if response.content_type == "text/event-stream":
            events = await read_sse(response)
            return response.status, json.loads(events[0][1])
        return response.status, await response.json(content_type=None)


def assert_deadline_error(status: int, payload: dict[str, Any]) -> None:
    assert status == 504, payload
    error = payload["error"]
    assert (error["type"], error["code"]) == ("timeout_error", "deadline_exceeded"), error
    # The message names the limit that applied: the config's 1 s, not the body's 100 s.
    assert "1s" in error["message"] and "100" not in error["message"], error


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("body_timeout", [100, None])
async def test_a_passed_deadline_is_a_504_at_the_configured_limit(
    fake: FakeUpstream, namespace: str, stream: bool, body_timeout: int | None
) -> None:
    # Retries on: an attempt cut short by the deadline must not be retried or become a 500.
    config = limits_config(fake, namespace, num_retries=2)
    body: dict[str, Any] = {"model": "hang", "messages": HELLO, "stream": stream}
    if body_timeout is not None:
        body["timeout"] = body_timeout
    async with service(config) as ([door], _), aiohttp.ClientSession() as session:
        async with asyncio.timeout(WAIT_S):  # the body's 100 s would not fit
            status, payload = await ask(session, door.url, body)
    assert_deadline_error(status, payload)
    assert fake.request_count == 1  # no retry after the deadline passed


async def test_a_shorter_body_timeout_is_honored(fake: FakeUpstream, namespace: str) -> None:
    config = limits_config(fake, namespace, settings={"request_timeout_s": 60})
    body = {"model": "hang", "messages": HELLO, "timeout": 0.5}
    async with service(config) as ([door], _), aiohttp.ClientSession() as session:
        async with asyncio.timeout(WAIT_S):
            status, payload = await ask(session, door.url, body)
    assert status == 504, payload
    assert "0.5s" in payload["error"]["message"]


@pytest.mark.parametrize(
    ("settings", "asked", "attempts"),
    [
        ({}, 5, 2),  # capped at router_settings.num_retries (1)
        ({}, 0, 1),  # fewer is always fine
        ({"max_num_retries": 3}, 5, 4),  # the operator allows clients up to 3
        ({"max_num_retries": 3}, 2, 3),
    ],
)
async def test_a_body_num_retries_is_capped_by_the_config(
    fake: FakeUpstream, namespace: str, settings: dict[str, Any], asked: int, attempts: int
) -> None:
    config = limits_config(
        fake, namespace, num_retries=1, settings={"request_timeout_s": 30, **settings}
    )
    body = {"model": "flaky", "messages": HELLO, "num_retries": asked}
    async with service(config) as ([door], _), aiohttp.ClientSession() as session:
        async with asyncio.timeout(WAIT_S):
            status, _ = await ask(session, door.url, body)
    assert status == 500
    assert fake.request_count == attempts


async def test_a_body_cannot_choose_its_own_fallbacks(fake: FakeUpstream, namespace: str) -> None:
    config = limits_config(fake, namespace, num_retries=0, settings={"request_timeout_s": 30})
    body = {
        "model": "flaky",
        "messages": HELLO,
        "fallbacks": ["other"],
        "context_window_fallbacks": [{"flaky": ["other"]}],
    }
    async with service(config) as ([door], _), aiohttp.ClientSession() as session:
        async with asyncio.timeout(WAIT_S):
            status, _ = await ask(session, door.url, body)
    assert status == 500
    assert fake.state.model_counts.get("other", 0) == 0
