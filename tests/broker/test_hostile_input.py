"""No 5xx from input (issue #13, item 5): numbers no decoder or encoder downstream can hold
and nesting deep enough to exhaust a recursive one are a 400 in OpenAI's error shape naming
the field, at the front door (nothing is queued) and at a worker that is handed such a body
by another producer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from broker.config.loader import load_config_text
from tests.broker.harness import RunningFrontDoor, service, wait_until
from tests.broker.providers_setup import TARGETS, Group, config_text
from tests.hostile_bodies import (
    CHAT_CASES,
    EMBEDDING_CASES,
    Case,
    chat_body,
    deep_object,
    embedding_body,
)
from workers import envelopes, redis_streams
from workers.envelopes import KIND_CHAT, Envelope, decode_record
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

CHAT_PROVIDERS = ("openai", "anthropic", "gemini")
EMBEDDING_PROVIDERS = ("openai", "gemini")
_BY_PROVIDER = {target.provider: target for target in TARGETS}


def embedding_model(provider: str) -> str:
    model = _BY_PROVIDER[provider].embedding_model
    assert model is not None, f"{provider} has no embedding model"
    return model


def groups() -> list[Group]:
    chat = [Group(p, _BY_PROVIDER[p], "") for p in CHAT_PROVIDERS]
    embed = [
        Group(f"{p}-embed", _BY_PROVIDER[p]._replace(model=embedding_model(p)), "")
        for p in EMBEDDING_PROVIDERS
    ]
    return chat + embed


def hostile_config(fake: FakeUpstream, namespace: str) -> Any:
    return load_config_text(config_text(fake.base_url, namespace, groups()))


@pytest.fixture
async def door(fake: FakeUpstream, namespace: str) -> AsyncIterator[RunningFrontDoor]:
    # No worker: every one of these must be refused before anything is queued.
    async with service(hostile_config(fake, namespace), workers=0) as ([front], _):
        yield front


async def post_raw(url: str, path: str, body: bytes) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + path, data=body, headers={"Content-Type": "application/json"}) as reply,
    ):
        return reply.status, await reply.json(content_type=None)


def assert_refused(status: int, payload: Any, case: Case) -> None:
    assert status == 400, payload
    assert set(payload) == {"error"}
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == case.param, error
    assert error["message"] and case.param in error["message"], error


@pytest.mark.parametrize("provider", CHAT_PROVIDERS)
@pytest.mark.parametrize("case", CHAT_CASES, ids=[c.id for c in CHAT_CASES])
async def test_a_hostile_chat_body_is_a_400_naming_the_field(
    door: RunningFrontDoor,
    redis: Redis,
    keys: Keys,
    fake: FakeUpstream,
    case: Case,
    provider: str,
) -> None:
    status, payload = await post_raw(door.url, "/v1/chat/completions", chat_body(provider, case))
    assert_refused(status, payload, case)
    assert await redis.xlen(keys.lane("default")) == 0
    assert fake.request_count == 0


@pytest.mark.parametrize("provider", EMBEDDING_PROVIDERS)
@pytest.mark.parametrize("case", EMBEDDING_CASES, ids=[c.id for c in EMBEDDING_CASES])
async def test_a_hostile_embedding_body_is_a_400_naming_the_field(
    door: RunningFrontDoor, redis: Redis, keys: Keys, case: Case, provider: str
) -> None:
    body = embedding_body(f"{provider}-embed", case)
    status, payload = await post_raw(door.url, "/v1/embeddings", body)
    assert_refused(status, payload, case)
    assert await redis.xlen(keys.lane("default")) == 0


# Bodies another producer might queue without the front door's checks: before, the worker
# answered 500 for each (RecursionError, orjson's overflow on re-encoding, its refusal of 1e400).
FOREIGN_BODIES = {
    "metadata nested 300 deep": (
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": %s}'
        % deep_object(300).text.encode(),
        "metadata",
    ),
    "unknown field holding 1e400": (
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "x": 1e400}',
        "x",
    ),
    "max_tokens of 2**64": (
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": %d}'
        % 2**64,
        "max_tokens",
    ),
    "seed of 2**64": (
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "seed": %d}' % 2**64,
        "seed",
    ),
    "not JSON": (b'{"model": "m", "messages": [', None),
}


@pytest.mark.parametrize("provider", CHAT_PROVIDERS)
@pytest.mark.parametrize("name", list(FOREIGN_BODIES))
async def test_a_worker_answers_400_for_a_hostile_envelope_from_another_producer(
    fake: FakeUpstream, namespace: str, redis: Redis, keys: Keys, name: str, provider: str
) -> None:
    body, param = FOREIGN_BODIES[name]
    now_ms = int(time.time() * 1000)
    envelope = Envelope(
        request_id=f"req_foreign_{provider}",
        kind=KIND_CHAT,
        model_group=provider,
        stream=False,
        deadline_ms=now_ms + 30_000,
        enqueued_ms=now_ms,
        reply_to="nobody",
        lane="default",
        body=body,
    )
    async with service(hostile_config(fake, namespace), front_doors=0):
        await redis_streams.enqueue(redis, keys, "default", envelopes.encode(envelope))

        async def replied() -> bool:
            return bool(await redis.xlen(keys.reply(envelope.request_id)))

        await wait_until(replied)
    [(_, fields)] = await redis.xrange(keys.reply(envelope.request_id))
    record = decode_record(fields[redis_streams.RECORD_FIELD])
    assert (record.end, record.status) == (envelopes.ERROR, 400), record
    error = orjson.loads(record.body)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert fake.request_count == 0
