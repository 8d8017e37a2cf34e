"""The front door's listener holds clients to its limits (issue #13, item 9) and answers what
aiohttp could not parse in the API's JSON shape, logging it once, without header values
(items 3 and 5): slow headers, slow bodies and idle keep-alives are closed, the connection
after the cap is refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import pytest

from broker.config import ConfigError, load_config_text
from broker.http_server import GuardedRunner, Throttled
from tests.broker.harness import RunningFrontDoor, make_config, service, wait_until
from tests.broker.raw_http import BOUND_S, closed_by_server, connect, raw, read_response
from workers.testing.server import FakeUpstream

MASTER = "sk-master-http-server-0123456789"
LIMITS = "{header_timeout_s: 0.5, body_timeout_s: 0.5, keepalive_timeout_s: 60, max_connections: 3}"
MODELS = "model_list: [{model_name: a, litellm_params: {model: openai/a}}]\n"


@pytest.fixture
async def door(fake: FakeUpstream, namespace: str) -> AsyncIterator[RunningFrontDoor]:
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        settings={"http": LIMITS},
        general=f"general_settings:\n  master_key: {MASTER}\n",
    )
    async with service(config, workers=0) as ([front], _):
        yield front


async def test_headers_trickling_past_the_header_timeout_are_cut_off(
    door: RunningFrontDoor,
) -> None:
    async with connect(door) as (reader, writer):
        writer.write(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: ")

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    await asyncio.sleep(0.1)
                    writer.write(b"a")
                    await writer.drain()

        trickler = asyncio.create_task(trickle())
        try:
            assert await closed_by_server(reader)
        finally:
            trickler.cancel()


async def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    door: RunningFrontDoor,
) -> None:
    async with connect(door) as (reader, _):
        assert await closed_by_server(reader)


async def test_a_body_slower_than_the_body_timeout_gets_a_408_and_the_connection_closes(
    door: RunningFrontDoor,
) -> None:
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {MASTER}\r\nContent-Length: 1000\r\n\r\n"
    )
    async with connect(door) as (reader, writer):
        writer.write(head.encode() + b'{"model": "gpt-test", ')

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    await asyncio.sleep(0.05)
                    writer.write(b" ")
                    await writer.drain()

        trickler = asyncio.create_task(trickle())
        try:
            status, headers, body = await read_response(reader)
            assert status == 408
            assert headers["content-type"].startswith("application/json")
            error = json.loads(body)["error"]
            assert error["code"] == "body_timeout"
            assert error["type"] == "timeout_error"
            assert await closed_by_server(reader)
        finally:
            trickler.cancel()


async def test_a_long_response_is_not_cut_by_the_body_timeout(door: RunningFrontDoor) -> None:
    """The body timer stops once the request body is in: only reading the request is timed."""
    async with connect(door) as (reader, writer):
        writer.write(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = await read_response(reader)
        assert status == 200
        await asyncio.sleep(1.0)  # twice the body timeout, idle between requests
        writer.write(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = await read_response(reader)
        assert status == 200


async def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(
    fake: FakeUpstream, namespace: str
) -> None:
    limits = "{header_timeout_s: 60, keepalive_timeout_s: 0.5}"
    config = make_config(fake.base_url + "/v1", namespace, settings={"http": limits})
    async with service(config, workers=0) as ([door], _), connect(door) as (reader, writer):
        writer.write(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = await read_response(reader)
        assert status == 200
        assert headers.get("connection", "keep-alive").lower() != "close"
        assert await closed_by_server(reader)


async def test_the_connection_after_the_cap_is_refused_and_logged(
    fake: FakeUpstream, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    limits = "{header_timeout_s: 60, keepalive_timeout_s: 60, max_connections: 2}"
    config = make_config(fake.base_url + "/v1", namespace, settings={"http": limits})
    ping = b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n"
    async with service(config, workers=0) as ([door], _), contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(connect(door)) for _ in range(2)]
        for reader, writer in held:  # both established and served: they count
            writer.write(ping)
            assert (await read_response(reader))[0] == 200
        async with connect(door) as (reader, _):
            assert await closed_by_server(reader)
        assert any("refused a connection" in r.getMessage() for r in caplog.records)
        # One leaves: a new connection is served again.
        held[0][1].close()

        runner = door.runner
        assert isinstance(runner, GuardedRunner)

        async def has_room() -> bool:
            return runner.guard.open_connections < 2

        await wait_until(has_room, BOUND_S)
        async with connect(door) as (reader, writer):
            writer.write(ping)
            assert (await read_response(reader))[0] == 200


async def test_malformed_headers_get_a_json_400_and_one_warning_without_the_key(
    door: RunningFrontDoor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = [
        f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MASTER}\x00\r\n\r\n",
        f"GET /v1/models HTTP/1.1\r\nHost: x\r\nx-api-key: {MASTER}\rx\r\n\r\n",
    ] * 3
    for request in bad:
        status, headers, body = await raw(door, request.encode())
        assert status == 400
        assert headers["content-type"].startswith("application/json")
        error = json.loads(body)["error"]
        assert error["type"] == "invalid_request_error"
        assert error["code"] == "malformed_request"
        assert error["message"].startswith("malformed HTTP request: ")
        assert MASTER not in body.decode()
    assert json.loads((await raw(door, bad[0].encode()))[2])["error"]["param"] == "Authorization"
    logged = [r for r in caplog.records if r.name.startswith(("aiohttp", "switchboard.http"))]
    assert [r.levelname for r in logged] == ["WARNING"]
    assert "malformed HTTP request from 127.0.0.1" in logged[0].getMessage()
    assert all(MASTER not in r.getMessage() and not r.exc_info for r in caplog.records)


async def test_a_garbage_request_line_gets_a_json_400(door: RunningFrontDoor) -> None:
    status, headers, body = await raw(door, b"HELLO\x01 there\r\n\r\n")
    assert status == 400
    assert json.loads(body)["error"]["code"] == "malformed_request"


def test_a_throttled_line_is_logged_once_per_interval_with_the_count_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    throttled = Throttled(logging.getLogger("test.throttled"), every_s=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            throttled.warning("bad request from %s", "1.2.3.4")
        now[0] += 10
        throttled.warning("bad request from %s", "5.6.7.8")
    assert [r.getMessage() for r in caplog.records] == [
        "bad request from 1.2.3.4",
        "bad request from 5.6.7.8 (4 more in the last 10s)",
    ]


@pytest.mark.parametrize(
    ("limits", "path"),
    [
        ("{header_timeout_s: 0}", "switchboard_settings.http.header_timeout_s"),
        ("{max_connections: -1}", "switchboard_settings.http.max_connections"),
        ("{read_timeout_s: 5}", "switchboard_settings.http"),
    ],
)
def test_bad_limits_fail_at_load_with_their_path(limits: str, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config_text(MODELS + f"switchboard_settings: {{http: {limits}}}\n", {})
    assert str(info.value).startswith(path), str(info.value)
