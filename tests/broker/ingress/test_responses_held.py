"""/v1/responses to OpenAI and Azure is native by default, and the provider holds the
responses: the gateway records only whose each provider-made id is and which deployment
holds it. Proven with the official `openai` SDK against fakes that keep responses per
account (a deployment's credential), as OpenAI does:

- a follow-up (`previous_response_id`) goes to the deployment holding its parent (the
  other deployment's account has no such response and would refuse it);
- GET, input_items, DELETE and cancel of an owned id reach that deployment; another key's
  id is a 404 for every one of them and for a follow-up, and nothing reaches the provider;
- `store: false` keeps nothing; the record's TTL is the response store's;
- a stream that breaks after it began ends with `response.failed` (an `error` event from
  the provider, or a cut connection);
- `background: true` runs at the provider (queued, polled, cancelled; the translated
  path's background is test_responses_background.py);
- the Azure fake serves the Responses API where the SDK's AzureOpenAI client and the v1
  surface call it, and the gateway reaches both natively.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import openai
import pytest
from openai import AsyncAzureOpenAI, AsyncOpenAI
from redis.asyncio import Redis

from tests.broker.harness import make_config, service
from tests.broker.ingress.setup import TIMEOUT_S
from tests.broker.ingress.test_responses_api import assert_failed_after_deltas
from workers.redis_streams import Keys
from workers.routing.redis_store import RedisFigures
from workers.routing.store import AttemptResult, Limits

KEY_A = "sk-key-a-0123456789"
KEY_B = "sk-key-b-0123456789"
TTL_S = 600
AZURE_VERSION = "2025-04-01-preview"


def models(base: str) -> str:
    openai_model = f"    model: openai/gpt-4o-mini\n    api_base: {base}/v1\n"
    return (
        # Two accounts behind one group: the fake keeps each one's responses apart.
        f"- model_name: held\n  litellm_params:\n{openai_model}    api_key: sk-acct-1\n"
        f"- model_name: held\n  litellm_params:\n{openai_model}    api_key: sk-acct-2\n"
        "- model_name: held-broken\n  litellm_params:\n"
        "    model: openai/gpt-4o-mini~stream_error_after=2~chunk_delay=0.1\n"
        f"    api_base: {base}/v1\n    api_key: sk-acct-1\n"
        "- model_name: held-cut\n  litellm_params:\n"
        "    model: openai/gpt-4o-mini~disconnect_after=2~chunk_delay=0.1\n"
        f"    api_base: {base}/v1\n    api_key: sk-acct-1\n"
        f"- model_name: translated\n  litellm_params:\n{openai_model}"
        "    api_key: sk-acct-1\n    responses_api: translate\n"
        "- model_name: translated-slow\n  litellm_params:\n"
        "    model: openai/gpt-4o-mini~latency=3\n"
        f"    api_base: {base}/v1\n    api_key: sk-acct-1\n    responses_api: translate\n"
        "- model_name: translated-trickle\n  litellm_params:\n"
        "    model: openai/gpt-4o-mini~chunks=12~chunk_delay=0.15\n"
        f"    api_base: {base}/v1\n    api_key: sk-acct-1\n    responses_api: translate\n"
        "- model_name: translated-429\n  litellm_params:\n"
        "    model: openai/gpt-4o-mini~status=429\n"
        f"    api_base: {base}/v1\n    api_key: sk-acct-1\n    responses_api: chat\n"
        "- model_name: azure\n  litellm_params:\n    model: azure/gpt-4o-mini\n"
        f"    api_base: {base}\n    api_key: sk-azure\n    api_version: {AZURE_VERSION}\n"
        "- model_name: azure-v1\n  litellm_params:\n    model: azure/gpt-4o-mini\n"
        f"    api_base: {base}/openai/v1\n    api_key: sk-azure\n    api_version: preview\n"
    )


@contextlib.asynccontextmanager
async def gateway(fake: Any, namespace: str) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK as key a and as key b (untyped: literal bodies need no casts)."""
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        general="general_settings:\n  master_key: sk-master-0123456789\n",
        settings={
            "api_keys": f"[{{alias: a, key: {KEY_A}}}, {{alias: b, key: {KEY_B}}}]",
            "responses_ttl_s": TTL_S,
        },
        extra_models=models(fake.base_url),
    )
    async with asyncio.timeout(TIMEOUT_S * 3), service(config) as ([door], _):
        url = door.url + "/v1"
        owner = AsyncOpenAI(base_url=url, api_key=KEY_A, max_retries=0, timeout=TIMEOUT_S)
        other = AsyncOpenAI(base_url=url, api_key=KEY_B, max_retries=0, timeout=TIMEOUT_S)
        async with owner, other:
            yield owner, other


def account_of(fake: Any, response_id: str | None = None) -> list[str]:
    """The credentials of the Responses requests the fake received (a follow-up of
    `response_id` only, when given)."""
    return [
        r.headers.get("Authorization") or r.headers.get("api-key")
        for r in fake.state.requests
        if r.path.endswith("/responses")
        and (response_id is None or (r.json or {}).get("previous_response_id") == response_id)
    ]


async def test_a_follow_up_goes_to_the_deployment_holding_its_parent(fake, namespace):
    async with gateway(fake, namespace) as (sdk, _):
        holders: set[str] = set()
        for n in range(12):
            fake.state.clear()
            first = await sdk.responses.create(model="held", input=f"conversation {n}")
            (parent_account,) = account_of(fake)
            holders.add(parent_account)
            assert first.id.startswith("resp_") and len(first.id) == 53  # OpenAI's own id
            stream = await sdk.responses.create(
                model="held", input="and then?", previous_response_id=first.id, stream=True
            )
            events = [event async for event in stream]
            assert events[-1].type == "response.completed"
            assert account_of(fake, first.id) == [parent_account]
            # A Codex-like turn: only a tool's output, the rest of the history at the provider.
            output = [{"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]
            third = await sdk.responses.create(
                model="held", input=output, previous_response_id=events[-1].response.id
            )
            assert third.status == "completed"
            assert account_of(fake, events[-1].response.id) == [parent_account]
        assert len(holders) == 2  # both deployments served first turns


async def test_owned_ids_are_read_and_deleted_at_the_provider(fake, namespace, redis: Redis):
    async with gateway(fake, namespace) as (sdk, _):
        response = await sdk.responses.create(model="held", input="Say hello")
        ttl = await redis.ttl(Keys(namespace).provider_response(response.id))
        assert 0 < ttl <= TTL_S
        again = await sdk.responses.retrieve(response.id)
        assert again.id == response.id and again.output_text == response.output_text
        items = await sdk.responses.input_items.list(response.id)
        assert [item.content[0].text for item in items.data] == ["Say hello"]
        with pytest.raises(openai.BadRequestError, match="background"):
            await sdk.responses.cancel(response.id)
        await sdk.responses.delete(response.id)
        assert await redis.exists(Keys(namespace).provider_response(response.id)) == 0
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(response.id)


async def test_another_keys_provider_id_is_a_404_and_never_forwarded(fake, namespace):
    async with gateway(fake, namespace) as (owner, other):
        response = await owner.responses.create(model="held", input="Say hello")
        fake.state.clear()
        for attempt in (
            other.responses.retrieve(response.id),
            other.responses.input_items.list(response.id),
            other.responses.delete(response.id),
            other.responses.cancel(response.id),
            other.responses.create(model="held", input="more", previous_response_id=response.id),
        ):
            with pytest.raises(openai.NotFoundError):
                await attempt
        assert list(fake.state.requests) == []
        assert (await owner.responses.retrieve(response.id)).id == response.id


async def test_store_false_keeps_nothing(fake, namespace, redis: Redis):
    async with gateway(fake, namespace) as (sdk, _):
        unstored = await sdk.responses.create(model="held", input="Say hello", store=False)
        assert await redis.exists(Keys(namespace).provider_response(unstored.id)) == 0
        fake.state.clear()
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(unstored.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.create(model="held", input="more", previous_response_id=unstored.id)
        assert list(fake.state.requests) == []


@pytest.mark.parametrize("group", ["held-broken", "held-cut"], ids=["error-event", "cut"])
async def test_a_native_stream_that_breaks_ends_with_response_failed(fake, namespace, group):
    async with gateway(fake, namespace) as (sdk, _):
        async with sdk.responses.stream(model=group, input="hi") as stream:
            events = [event async for event in stream]
        assert_failed_after_deltas(events)


async def test_background_runs_and_is_cancelled_at_the_provider(fake, namespace):
    async with gateway(fake, namespace) as (sdk, _):
        queued = await sdk.responses.create(model="held", input="Take your time", background=True)
        assert queued.status == "queued" and queued.background
        statuses = [(await sdk.responses.retrieve(queued.id)).status for _ in range(3)]
        assert statuses == ["queued", "in_progress", "completed"]
        assert (await sdk.responses.retrieve(queued.id)).output_text
        running = await sdk.responses.create(model="held", input="Long job", background=True)
        cancelled = await sdk.responses.cancel(running.id)
        assert cancelled.status == "cancelled"
        assert (await sdk.responses.retrieve(running.id)).status == "cancelled"


@pytest.mark.parametrize("surface", ["versioned", "v1"])
async def test_the_azure_fake_serves_the_sdks_responses_paths(fake, surface: str):
    if surface == "versioned":
        sdk: Any = AsyncAzureOpenAI(
            azure_endpoint=fake.base_url, api_version=AZURE_VERSION, api_key="k", max_retries=0
        )
        path = "/openai/responses"
    else:
        sdk = AsyncOpenAI(base_url=fake.base_url + "/openai/v1", api_key="k", max_retries=0)
        path = "/openai/v1/responses"
    async with sdk:
        fake.state.clear()
        response = await sdk.responses.create(model="gpt-4o-mini", input="hi")
        assert fake.state.requests[0].path == path
        assert (await sdk.responses.retrieve(response.id)).output_text == response.output_text
        follow_up = await sdk.responses.create(
            model="gpt-4o-mini", input="more", previous_response_id=response.id
        )
        assert follow_up.previous_response_id == response.id
        await sdk.responses.delete(response.id)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(response.id)


@pytest.mark.parametrize(
    ("group", "path"),
    [("azure", "/openai/responses"), ("azure-v1", "/openai/v1/responses")],
    ids=["versioned", "v1"],
)
async def test_azure_deployments_are_native(fake, namespace, group: str, path: str):
    async with gateway(fake, namespace) as (sdk, other):
        fake.state.clear()
        first = await sdk.responses.create(model=group, input="hi")
        (sent,) = fake.state.requests
        assert sent.path == path and sent.json["model"] == "gpt-4o-mini"
        assert sent.headers["api-key"] == "sk-azure"
        async with sdk.responses.stream(
            model=group, input="more", previous_response_id=first.id
        ) as stream:
            events = [event async for event in stream]
        assert events[-1].type == "response.completed"
        assert (await sdk.responses.retrieve(first.id)).id == first.id
        with pytest.raises(openai.NotFoundError):
            await other.responses.retrieve(first.id)


async def cool_down(
    redis: Redis, namespace: str, deployment: str, seconds: float, group: str = "held"
) -> None:
    """Put a deployment of `group` in cooldown, as the router does after failures."""
    figures = RedisFigures(redis, Keys(namespace), "test")
    assert await figures.admit(group, deployment, Limits(), 1) == "ok"
    failure = AttemptResult(failure_class="RateLimitError", allowed_fails=0, cooldown_s=seconds)
    assert await figures.release(group, deployment, failure) is True


async def completed_in(sdk: Any, *, stream: bool, **create: Any) -> float:
    """Seconds until `responses.create(**create)` completed, whole or streamed to its end."""
    started = time.monotonic()
    reply = await sdk.responses.create(stream=stream, **create)
    if stream:
        events = [event async for event in reply]
        assert events[-1].type == "response.completed"
    else:
        assert reply.status == "completed"
    return time.monotonic() - started


async def holder(redis: Redis, namespace: str, response_id: str) -> str:
    # redis-py types HGET for its sync and async clients at once.
    raw: Any = await cast(
        "Any", redis.hget(Keys(namespace).provider_response(response_id), "deployment")
    )
    assert raw is not None
    return str(raw.decode())


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_follow_up_waits_for_its_cooling_deployment(
    fake, namespace, redis: Redis, stream: bool
):
    """The deployment holding the parent is cooling down: the follow-up cannot go elsewhere,
    so it waits (within its timeout) rather than fail, and is served there."""
    async with gateway(fake, namespace) as (sdk, _):
        first = await sdk.responses.create(model="held", input="Say hello")
        held_by = await holder(redis, namespace, first.id)
        fake.state.clear()
        await cool_down(redis, namespace, held_by, 1.5)
        waited_s = await completed_in(
            sdk, model="held", input="and then?", previous_response_id=first.id, stream=stream
        )
    assert 1.0 <= waited_s < 10
    assert len(account_of(fake, first.id)) == 1  # one call, to the holder, once it came back


async def test_a_follow_up_whose_deployment_stays_away_fails_clearly(fake, namespace, redis: Redis):
    async with gateway(fake, namespace) as (sdk, _):
        first = await sdk.responses.create(model="held", input="Say hello")
        held_by = await holder(redis, namespace, first.id)
        fake.state.clear()
        await cool_down(redis, namespace, held_by, 60)
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as failed:
            await sdk.responses.create(
                model="held",
                input="and then?",
                previous_response_id=first.id,
                extra_body={"timeout": 2},
            )
        waited_s = time.monotonic() - started
    error: Any = failed.value.body
    assert failed.value.status_code == 503 and error["code"] == "deployment_unavailable"
    assert error["param"] == "previous_response_id" and held_by in error["message"]
    assert 1.5 <= waited_s < 10
    assert account_of(fake) == []  # never sent anywhere else
