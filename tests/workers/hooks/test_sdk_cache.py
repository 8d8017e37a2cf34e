"""The SDK's cache (`switchboard.cache = Cache(...)`), local and on a real Redis, against
the fake upstream: a hit makes no provider call and costs 0; the request's controls work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

import switchboard
from tests.redis_helpers import REDIS_URL, delete_namespace, new_namespace
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion

HELLO = [{"role": "user", "content": "cache this"}]


@pytest.fixture(autouse=True)
def no_cache_after() -> Iterator[None]:
    yield
    switchboard.cache = None
    switchboard.success_callback = []


def _base(fake: FakeUpstream) -> dict[str, Any]:
    return {"api_key": "sk-test", "api_base": fake.base_url + "/v1"}


async def _chat(fake: FakeUpstream, **kwargs: Any) -> ChatCompletion:
    response = await switchboard.acompletion("openai/gpt-4o-mini", HELLO, **_base(fake), **kwargs)
    assert isinstance(response, ChatCompletion)
    return response


async def test_a_repeated_call_is_answered_from_the_local_cache(fake: FakeUpstream) -> None:
    seen: list[dict[str, Any]] = []
    switchboard.success_callback = [lambda kwargs, *_: seen.append(kwargs)]
    switchboard.cache = switchboard.Cache()
    first = await _chat(fake)
    second = await _chat(fake, user="someone else")  # not part of the key
    assert fake.request_count == 1
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.hidden_params["cache_hit"] is True and second.hidden_params["cost_usd"] == 0
    assert first.hidden_params["cost_usd"] > 0
    await asyncio.to_thread(switchboard.flush_callbacks)
    assert [k["cache_hit"] for k in seen] == [False, True]
    # A stream is never answered from the cache; caching=False skips it; no-store stores not.
    stream = await switchboard.acompletion("openai/gpt-4o-mini", HELLO, stream=True, **_base(fake))
    assert [chunk async for chunk in stream]  # type: ignore[union-attr]
    await _chat(fake, caching=False)
    await _chat(fake, temperature=0.3, cache={"no-store": True})
    await _chat(fake, temperature=0.3)
    assert fake.request_count == 5


async def test_embeddings_are_cached_and_default_off_needs_asking(fake: FakeUpstream) -> None:
    switchboard.cache = switchboard.Cache(mode="default_off")
    for _ in range(2):
        await switchboard.aembedding("openai/text-embedding-3-small", "hi", **_base(fake))
    assert fake.request_count == 2
    for _ in range(2):
        response = await switchboard.aembedding(
            "openai/text-embedding-3-small", "hi", caching=True, **_base(fake)
        )
    assert fake.request_count == 3 and response.hidden_params["cache_hit"] is True


@pytest.fixture
async def redis_namespace() -> AsyncIterator[str]:
    name = new_namespace()
    yield name
    client = Redis.from_url(REDIS_URL)
    await delete_namespace(client, name)
    await client.aclose()


async def test_a_redis_cache_is_shared_between_processes(
    fake: FakeUpstream, redis_namespace: str
) -> None:
    writer = switchboard.Cache(type="redis", url=REDIS_URL, namespace=redis_namespace)
    reader = switchboard.Cache(type="redis", url=REDIS_URL, namespace=redis_namespace)
    try:
        switchboard.cache = writer
        first = await _chat(fake)
        switchboard.cache = reader  # another process's cache object, the same Redis
        second = await _chat(fake)
        assert fake.request_count == 1 and second.hidden_params["cache_hit"] is True
        assert second.choices[0].message.content == first.choices[0].message.content
        third = await _chat(fake, cache={"s-maxage": 0})
        assert fake.request_count == 2 and "cache_hit" not in third.hidden_params
    finally:
        await writer.aclose()
        await reader.aclose()


async def test_the_router_uses_the_cache_too(fake: FakeUpstream) -> None:
    switchboard.cache = switchboard.Cache()
    router = switchboard.Router(
        model_list=[
            {
                "model_name": "gpt",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": fake.base_url + "/v1",
                    "api_key": "sk-test",
                },
            }
        ]
    )
    try:
        first = await router.acompletion("gpt", HELLO)
        second = await router.acompletion("gpt", HELLO)
    finally:
        await router.aclose()
    assert fake.request_count == 1
    assert isinstance(second, ChatCompletion) and isinstance(first, ChatCompletion)
    assert second.hidden_params["cache_hit"] is True
