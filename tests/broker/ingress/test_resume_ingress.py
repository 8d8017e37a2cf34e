"""Messages and Responses streams resume like chat streams: a client that drops mid-stream
resumes by `Last-Event-ID` on another front door and gets exactly the missing events, each
still named (`event: ...`), as the first front door framed them."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.broker.harness import make_config, service
from tests.broker.ingress.setup import TIMEOUT_S

HELLO = [{"role": "user", "content": "Say hello"}]
BODIES: dict[str, dict[str, Any]] = {
    "/v1/messages": {"model": "slow", "messages": HELLO, "max_tokens": 256, "stream": True},
    "/v1/responses": {"model": "slow", "input": "Say hello", "stream": True},
}


async def read_events(response: aiohttp.ClientResponse, limit: int | None = None) -> list[str]:
    """Each event's text (its lines joined), up to `limit` events."""
    events: list[str] = []
    lines: list[str] = []
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line:
            lines.append(line)
            continue
        if lines:
            events.append("\n".join(lines))
            lines = []
            if limit is not None and len(events) >= limit:
                break
    return events


@pytest.mark.parametrize("route", list(BODIES))
async def test_a_dropped_stream_resumes_on_another_front_door(fake, namespace, route):
    config = make_config(fake.base_url + "/v1", namespace, settings={"disconnect_grace_s": 3})
    async with asyncio.timeout(TIMEOUT_S), service(config, front_doors=2) as ([first, second], _):
        async with aiohttp.ClientSession() as http:
            async with http.post(first.url + route, json=BODIES[route]) as response:
                assert response.status == 200
                request_id = response.headers["x-request-id"]
                before = await read_events(response, limit=4)
                response.close()
        last_id = before[-1].split("\n")[0].removeprefix("id: ")
        async with aiohttp.ClientSession() as http:
            url = f"{second.url}/v1/streams/{request_id}"
            async with http.get(url, headers={"Last-Event-ID": last_id}) as response:
                assert response.status == 200
                after = await read_events(response)
            async with http.get(url, params={"after": "0"}) as response:
                whole = await read_events(response)
    assert before + after == whole
    named = [e for e in whole if "\nevent: " in e]
    assert len(named) == len(whole) - 1  # all but the trailing [DONE]
    last = "message_stop" if route == "/v1/messages" else "response.completed"
    assert f"event: {last}" in whole[-2]
