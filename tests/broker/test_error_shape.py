"""Every answer the front door gives to bad headers or a bad path is a 4xx in OpenAI's error
shape naming what was wrong (issue #13, item 5): bytes that are not UTF-8 in the key or lane
headers, an Authorization header that is not `Bearer <key>`, an unknown path or method, a
body over the size limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.broker.harness import RunningFrontDoor, make_config, service
from tests.broker.raw_http import raw
from workers.testing.server import FakeUpstream

MASTER = "sk-master-error-shape-0123456789"
CHAT = b'{"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture
async def door(fake: FakeUpstream, namespace: str) -> AsyncIterator[RunningFrontDoor]:
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        settings={"max_body_bytes": 1000, "lanes": "[default, batch]"},
        general=f"general_settings:\n  master_key: {MASTER}\n",
    )
    async with service(config, workers=0) as ([front], _):
        yield front


def chat_request(*headers: bytes, body: bytes = CHAT) -> bytes:
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    length = b"Content-Length: %d\r\n" % len(body)
    return head + b"".join(h + b"\r\n" for h in headers) + length + b"\r\n" + body


def lowered(response: aiohttp.ClientResponse) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items()}


def error_of(status: int, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    assert headers["content-type"].startswith("application/json"), (status, body)
    error: dict[str, Any] = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(
    ("header", "param"),
    [
        (b"Authorization: Bearer sk-\xff\xfe-not-text", "Authorization"),
        (b"x-api-key: sk-\xc3\x28-not-text", "x-api-key"),
    ],
)
async def test_a_key_header_that_is_not_utf8_is_a_401_naming_it(
    door: RunningFrontDoor, header: bytes, param: str
) -> None:
    status, headers, body = await raw(door, chat_request(header))
    assert status == 401
    error = error_of(status, headers, body)
    assert error["type"] == "authentication_error"
    assert error["param"] == param
    assert f"the {param} header is not valid UTF-8 text" == error["message"]


async def test_a_key_sent_without_bearer_is_told_so(door: RunningFrontDoor) -> None:
    status, headers, body = await raw(door, chat_request(f"Authorization: {MASTER}".encode()))
    assert status == 401
    error = error_of(status, headers, body)
    assert error["message"] == "the Authorization header must be `Bearer <key>`"
    assert error["code"] == "invalid_authorization_header"
    assert MASTER not in body.decode()


async def test_a_bearer_key_and_an_x_api_key_still_authenticate(door: RunningFrontDoor) -> None:
    for header in (f"Authorization: Bearer {MASTER}", f"x-api-key: {MASTER}"):
        status, _, body = await raw(door, chat_request(header.encode(), body=b"{}"))
        assert status == 400, body  # past authentication: the body is what is wrong


async def test_a_lane_header_that_is_not_utf8_is_a_400_naming_it(door: RunningFrontDoor) -> None:
    request = chat_request(f"Authorization: Bearer {MASTER}".encode(), b"x-switchboard-lane: \xff")
    status, headers, body = await raw(door, request)
    assert status == 400
    error = error_of(status, headers, body)
    assert error["param"] == "x-switchboard-lane"
    assert error["code"] == "unknown_lane"
    assert "lanes: default, batch" in error["message"]


async def test_an_unknown_path_is_a_json_404_listing_what_is_served(
    door: RunningFrontDoor,
) -> None:
    async with aiohttp.ClientSession() as http, http.get(door.url + "/v2/foo") as response:
        assert response.status == 404
        error = error_of(response.status, lowered(response), await response.read())
    message = error["message"]
    assert message.startswith("Unknown path `/v2/foo`; this gateway serves /v1/chat/completions")
    assert "/v1/embeddings" in message and "/v1/models" in message
    assert error["type"] == "not_found_error"


async def test_a_wrong_method_is_a_json_405_naming_the_allowed_one(door: RunningFrontDoor) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(door.url + "/v1/chat/completions") as response,
    ):
        assert response.status == 405
        error = error_of(response.status, lowered(response), await response.read())
    assert error["message"] == (
        "`GET /v1/chat/completions` is not allowed; `/v1/chat/completions` accepts POST"
    )
    assert error["code"] == "method_not_allowed"


async def test_a_body_over_the_limit_is_a_json_413(door: RunningFrontDoor) -> None:
    body = b'{"model": "gpt-test", "pad": "' + b"x" * 2000 + b'"}'
    status, headers, text = await raw(
        door, chat_request(f"Authorization: Bearer {MASTER}".encode(), body=body)
    )
    assert status == 413
    assert error_of(status, headers, text)["code"] == "request_too_large"


async def test_a_path_that_is_not_utf8_is_a_json_404(door: RunningFrontDoor) -> None:
    status, headers, body = await raw(door, b"GET /v1/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404
    assert error_of(status, headers, body)["type"] == "not_found_error"


async def test_a_redis_failure_no_handler_wrapped_is_a_503_in_the_error_shape() -> None:
    from aiohttp import web
    from redis.exceptions import ConnectionError as RedisConnectionError

    from broker.errors import error_middleware

    async def failing(request: web.Request) -> web.Response:
        raise RedisConnectionError("Error 111 connecting to redis:6379")

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/x", failing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/x") as response:
                body = await response.json()
                assert response.status == 503
                assert response.headers["Retry-After"] == "1"
    finally:
        await runner.cleanup()
    assert body["error"]["code"] == "queue_unavailable"
    assert "redis:6379" not in body["error"]["message"]
