"""A translated /v1/responses follow-up whose parent's output holds encrypted reasoning
(Claude's signed thinking in an `sbr1:` item) goes only to the deployment that served the
parent, as a native follow-up goes to the one holding its parent (issue #18): when that
deployment is cooling down the follow-up waits for it within its timeout, and says so
clearly when it stays away. A parent without encrypted reasoning only prefers it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import openai
import pytest
from openai import AsyncOpenAI
from redis.asyncio import Redis

from tests.broker.harness import make_config, service
from tests.broker.ingress.setup import TIMEOUT_S
from tests.broker.ingress.test_responses_held import completed_in, cool_down
from workers.redis_streams import Keys

GROUP = "claude-pair"
REASONING = {"effort": "low", "summary": "auto"}


def models(base: str) -> str:
    claude = f"    model: anthropic/claude-sonnet-4-5\n    api_base: {base}\n"
    # Two accounts behind one group: which one served a call shows in its x-api-key.
    return "".join(
        f"- model_name: {GROUP}\n  litellm_params:\n{claude}    api_key: sk-ant-{n}\n"
        for n in (1, 2)
    )


@contextlib.asynccontextmanager
async def gateway(fake: Any, namespace: str) -> AsyncIterator[Any]:
    """The SDK (untyped: literal bodies need no casts)."""
    config = make_config(fake.base_url + "/v1", namespace, extra_models=models(fake.base_url))
    async with asyncio.timeout(TIMEOUT_S * 2), service(config) as ([door], _):
        async with AsyncOpenAI(
            base_url=door.url + "/v1", api_key="sk-switchboard", max_retries=0, timeout=TIMEOUT_S
        ) as sdk:
            yield sdk


async def served_by(redis: Redis, namespace: str, response_id: str) -> str:
    # redis-py types HGET for its sync and async clients at once.
    raw: Any = await cast("Any", redis.hget(Keys(namespace).response(response_id), "deployment"))
    assert raw is not None
    return str(raw.decode())


def accounts(fake: Any) -> list[str]:
    return [r.headers["x-api-key"] for r in fake.state.requests if r.path == "/v1/messages"]


async def first_turn(sdk: Any, fake: Any, **kw: Any) -> tuple[Any, str]:
    fake.state.clear()
    first = await sdk.responses.create(model=GROUP, input="Think", **kw)
    (account,) = accounts(fake)
    fake.state.clear()
    return first, account


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_follow_up_with_encrypted_reasoning_waits_for_its_deployment(
    fake, namespace, redis: Redis, stream: bool
):
    async with gateway(fake, namespace) as sdk:
        first, account = await first_turn(sdk, fake, reasoning=REASONING)
        assert any(i.type == "reasoning" and i.encrypted_content for i in first.output)
        await cool_down(redis, namespace, await served_by(redis, namespace, first.id), 1.5, GROUP)
        waited_s = await completed_in(
            sdk,
            model=GROUP,
            input="Again",
            previous_response_id=first.id,
            reasoning=REASONING,
            stream=stream,
        )
    assert 1.0 <= waited_s < 10
    assert accounts(fake) == [account]  # one call, to the parent's deployment, once back


async def test_a_follow_up_whose_reasoning_deployment_stays_away_fails_clearly(
    fake, namespace, redis: Redis
):
    async with gateway(fake, namespace) as sdk:
        first, _ = await first_turn(sdk, fake, reasoning=REASONING)
        deployment = await served_by(redis, namespace, first.id)
        await cool_down(redis, namespace, deployment, 60, GROUP)
        with pytest.raises(openai.APIStatusError) as failed:
            await sdk.responses.create(
                model=GROUP,
                input="Again",
                previous_response_id=first.id,
                extra_body={"timeout": 2},
            )
    error: Any = failed.value.body
    assert failed.value.status_code == 503 and error["code"] == "deployment_unavailable"
    assert error["param"] == "previous_response_id"
    assert deployment in error["message"] and "encrypted reasoning" in error["message"]
    assert accounts(fake) == []  # never sent to the other deployment


async def test_a_follow_up_without_encrypted_reasoning_moves_on(fake, namespace, redis: Redis):
    """Nothing in the parent needs its deployment: another one serves the follow-up at once
    (the conversation's preference only)."""
    async with gateway(fake, namespace) as sdk:
        first, account = await first_turn(sdk, fake)
        assert not any(i.type == "reasoning" for i in first.output)
        await cool_down(redis, namespace, await served_by(redis, namespace, first.id), 60, GROUP)
        reply = await sdk.responses.create(
            model=GROUP, input="Again", previous_response_id=first.id
        )
        assert reply.status == "completed"
    (other,) = accounts(fake)
    assert other != account
