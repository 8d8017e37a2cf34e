"""The most of one reply the gateway holds (issue #13, item 2): an upstream body past
`switchboard_settings.max_reply_bytes` is refused while it is read, never retried, and the
client gets a 502 `upstream_response_too_large` naming the cap and the setting; a stream
past it ends with that error as an event."""

from __future__ import annotations

import json

import aiohttp

from tests.broker.harness import make_config, read_sse, service
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]
CAP = 1_000_000
MODELS = """\
- model_name: huge
  litellm_params:
    model: openai/gpt-4o-mini~reply_bytes=3000000
    api_base: {base}
    api_key: sk-fake
- model_name: long-stream
  litellm_params:
    model: openai/gpt-4o-mini~echo~chunks=400~chunk_delay=0.001
    api_base: {base}
    api_key: sk-fake
"""


async def test_an_upstream_reply_past_the_cap_is_a_502_and_is_not_retried(
    fake: FakeUpstream, namespace: str
) -> None:
    base = fake.base_url + "/v1"
    config = make_config(
        base, namespace, settings={"max_reply_bytes": CAP}, extra_models=MODELS.format(base=base)
    )
    body = {"model": "huge", "messages": HELLO, "num_retries": 2}
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            status, payload = response.status, await response.json()
    assert status == 502, payload
    error = payload["error"]
    assert error["type"] == "api_error"
    assert error["code"] == "upstream_response_too_large"
    assert "1000000 bytes" in error["message"]
    assert "switchboard_settings.max_reply_bytes" in error["message"]
    # Asked once: the same request would fetch the same reply again.
    assert fake.model_counts == {"gpt-4o-mini~reply_bytes=3000000": 1}


async def test_a_stream_past_the_cap_ends_with_an_error_event(
    fake: FakeUpstream, namespace: str
) -> None:
    base = fake.base_url + "/v1"
    config = make_config(
        base, namespace, settings={"max_reply_bytes": 20_000}, extra_models=MODELS.format(base=base)
    )
    # The fake echoes the message back in 400 chunks: about 120 KB of events.
    words = [{"role": "user", "content": "word " * 2000}]
    body = {"model": "long-stream", "messages": words, "stream": True}
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            events = await read_sse(response)
    *chunks, (_, last) = events
    assert chunks and all("choices" in json.loads(data) for _, data in chunks)
    assert json.loads(last)["error"]["code"] == "upstream_response_too_large"
