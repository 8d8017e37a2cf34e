"""The response cache through a real front door, Redis and worker: a hit is answered by the
front door (no upstream call), as JSON or replayed as a stream; the request's own controls
and the key's scope decide what is read and stored."""

from __future__ import annotations

import textwrap
from typing import Any

import aiohttp
import orjson
import pytest

from tests.broker.harness import make_config, post, read_sse, service
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "cache me"}]
BODY = {"model": "gpt-test", "messages": HELLO}
KEY_A = "sk-cache-a-0123456789"
KEY_B = "sk-cache-b-0123456789"


def _config(fake: FakeUpstream, namespace: str, params: str = "", **kwargs: Any) -> Any:
    general = "litellm_settings:\n  cache: true\n" + (
        "  cache_params:\n" + textwrap.indent(textwrap.dedent(params), "    ") if params else ""
    )
    return make_config(fake.base_url + "/v1", namespace, general=general, **kwargs)


def _text(events: list[tuple[str | None, str]]) -> str:
    parts = []
    for _, data in events:
        if data == "[DONE]":
            continue
        for choice in orjson.loads(data)["choices"]:
            parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


async def test_a_repeated_request_is_answered_from_the_cache_without_upstream(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        status, first, response = await post(http, door.url, BODY)
        assert status == 200 and response.headers["x-switchboard-cache"] == "miss"
        calls = fake.request_count
        # Stored after the answer, in the background: the next identical request hits.
        for _ in range(50):
            status, second, response = await post(http, door.url, {**BODY, "user": "other"})
            if response.headers["x-switchboard-cache"] == "hit":
                break
        assert status == 200 and response.headers["x-switchboard-cache"] == "hit"
        assert second == first
        assert response.headers["x-switchboard-cost-usd"] == "0"
        assert response.headers["x-request-id"] != first["id"]
        # A hit for a streaming request replays the answer as a stream, with usage if asked.
        stream_body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
        async with http.post(door.url + "/v1/chat/completions", json=stream_body) as streamed:
            assert streamed.headers["x-switchboard-cache"] == "hit"
            events = await read_sse(streamed)
        assert events[-1][1] == "[DONE]"
        assert _text(events) == first["choices"][0]["message"]["content"]
        assert orjson.loads(events[-2][1])["usage"] == first["usage"]
        assert fake.request_count == calls
        # What decides the answer is in the key: another temperature is another answer.
        _, _, response = await post(http, door.url, {**BODY, "temperature": 0.1})
        assert response.headers["x-switchboard-cache"] == "miss"
        async with http.get(door.url + "/metrics") as scraped:
            metrics = await scraped.text()
    assert 'switchboard_cache_lookups_total{model_group="gpt-test",result="hit"} 2.0' in metrics
    assert "switchboard_cache_saved_cost_usd_total" in metrics


async def test_a_streamed_miss_is_stored_and_answers_a_plain_request(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        async with http.post(
            door.url + "/v1/chat/completions", json={**BODY, "stream": True}
        ) as streamed:
            assert streamed.headers["x-switchboard-cache"] == "miss"
            text = _text(await read_sse(streamed))
        for _ in range(50):
            status, body, response = await post(http, door.url, BODY)
            if response.headers["x-switchboard-cache"] == "hit":
                break
        assert response.headers["x-switchboard-cache"] == "hit"
        assert body["choices"][0]["message"]["content"] == text


async def test_per_request_controls_no_store_no_cache_namespace_and_max_age(
    fake: FakeUpstream, namespace: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:

        async def cache_of(body: dict[str, Any], **kwargs: Any) -> str:
            status, _, response = await post(http, door.url, body, **kwargs)
            assert status == 200
            return response.headers["x-switchboard-cache"]

        no_store = {**BODY, "cache": {"no-store": True}}
        assert await cache_of(no_store) == "miss"
        assert await cache_of(no_store) == "miss"  # never stored
        assert await cache_of(BODY) == "miss"
        for _ in range(50):
            if await cache_of(BODY) == "hit":
                break
        assert await cache_of({**BODY, "cache": {"no-cache": True}}) == "miss"
        assert await cache_of(BODY, headers={"Cache-Control": "no-cache"}) == "miss"
        assert await cache_of({**BODY, "cache": {"s-maxage": 0}}) == "miss"
        assert await cache_of({**BODY, "cache": {"namespace": "other"}}) == "miss"
        # A request naming guardrails never gets an answer stored without them.
        assert await cache_of({**BODY, "metadata": {"guardrails": []}}) == "hit"
        # The controls never reach the upstream.
        assert all("cache" not in r.json for r in fake.requests)


async def test_key_scope_keeps_one_keys_answers_from_another(
    fake: FakeUpstream, namespace: str
) -> None:
    keys = f"[{{alias: a, key: {KEY_A}}}, {{alias: b, key: {KEY_B}}}]"
    config = _config(fake, namespace, "scope: key\n", settings={"api_keys": keys})
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:

        async def cache_of(key: str) -> str:
            auth = {"Authorization": f"Bearer {key}"}
            status, _, response = await post(http, door.url, BODY, headers=auth)
            assert status == 200
            return response.headers["x-switchboard-cache"]

        assert await cache_of(KEY_A) == "miss"
        for _ in range(50):
            if await cache_of(KEY_A) == "hit":
                break
        assert await cache_of(KEY_B) == "miss"


async def test_default_off_caches_only_requests_that_ask_and_embeddings_are_cached(
    fake: FakeUpstream, namespace: str
) -> None:
    config = _config(fake, namespace, "mode: default_off\n")
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        _, _, response = await post(http, door.url, BODY)
        assert "x-switchboard-cache" not in response.headers
        asked = {"model": "embed-test", "input": "hi", "cache": {"use-cache": True}}
        results = []
        for _ in range(50):
            async with http.post(door.url + "/v1/embeddings", json=asked) as response:
                assert response.status == 200
                results.append(response.headers["x-switchboard-cache"])
            if results[-1] == "hit":
                break
        assert results[0] == "miss" and results[-1] == "hit"


@pytest.mark.parametrize(
    ("cache", "param"),
    [
        ("yes", "cache"),
        ({"ttl": -1}, "cache.ttl"),
        ({"no-cache": "true"}, "cache.no-cache"),
        ({"namespace": ""}, "cache.namespace"),
    ],
)
async def test_a_malformed_cache_object_is_a_400_naming_it(
    fake: FakeUpstream, namespace: str, cache: Any, param: str
) -> None:
    async with service(_config(fake, namespace)) as ([door], _), aiohttp.ClientSession() as http:
        status, body, _ = await post(http, door.url, {**BODY, "cache": cache})
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["param"] == param
