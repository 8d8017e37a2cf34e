"""The SDK Router against the fake upstream: retries, fallbacks of each kind, cooldowns,
strategies over live in-memory figures, and streams retried only before their first chunk."""

from __future__ import annotations

import gc
import time
from typing import Any

import pytest

from broker import Router
from tests.redis_helpers import REDIS_URL
from tests.waiting import eventually
from workers.errors import ContextWindowExceeded, InvalidRequest, ProviderError, RateLimited
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion

MESSAGES = [{"role": "user", "content": "hi"}]


def entry(fake: FakeUpstream, group: str, model: str, **params: Any) -> dict[str, Any]:
    info = params.pop("model_info", {})
    return {
        "model_name": group,
        "litellm_params": {
            "model": f"openai/{model}",
            "api_base": fake.base_url + "/v1",
            "api_key": "sk-fake",
            **params,
        },
        "model_info": info,
    }


def served_by(response: Any) -> str:
    assert isinstance(response, ChatCompletion)
    deployment: str = response.hidden_params["deployment"]
    return deployment


async def test_a_429_is_retried_after_its_retry_after(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    model = "gpt-4o-mini~status=429~retry_after=1~fail_first=1"
    router = Router([entry(fake, "g", model)], num_retries=2)
    routers.append(router)
    started = time.monotonic()
    response = await router.acompletion("g", MESSAGES)
    assert time.monotonic() - started >= 0.9
    assert isinstance(response, ChatCompletion)
    assert response.hidden_params["attempts"] == 2
    assert fake.state.model_counts[model] == 2


async def test_retry_policy_overrides_num_retries_per_error_class(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    model = "gpt-4o-mini~status=429~fail_first=1"
    router = Router(
        [entry(fake, "g", model)], num_retries=3, retry_policy={"RateLimitErrorRetries": 0}
    )
    routers.append(router)
    with pytest.raises(RateLimited):
        await router.acompletion("g", MESSAGES)
    assert fake.state.model_counts[model] == 1


async def test_generic_fallback_serves_when_the_group_keeps_failing(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = Router(
        [entry(fake, "a", "gpt-4o-mini~status=500"), entry(fake, "b", "gpt-4o-mini")],
        num_retries=1,
        retry_after=0.01,
        fallbacks=[{"a": ["b"]}],
    )
    routers.append(router)
    response = await router.acompletion("a", MESSAGES)
    assert isinstance(response, ChatCompletion)
    assert served_by(response) == "b[0]"
    assert (response.hidden_params["attempts"], response.hidden_params["fallbacks"]) == (3, 1)


async def test_context_window_error_falls_back_to_the_larger_model(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = Router(
        [
            entry(fake, "small", "gpt-4o-mini~status=context_window"),
            entry(fake, "large", "gpt-4o-mini"),
            entry(fake, "other", "gpt-4o-mini"),
        ],
        num_retries=2,
        fallbacks=[{"small": ["other"]}],
        context_window_fallbacks=[{"small": ["large"]}],
    )
    routers.append(router)
    response = await router.acompletion("small", MESSAGES)
    assert served_by(response) == "large[0]"
    # A context-window error is not retried: the same prompt would not fit the next time.
    assert fake.state.model_counts["gpt-4o-mini~status=context_window"] == 1


async def test_content_policy_error_uses_content_policy_fallbacks(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = Router(
        [entry(fake, "strict", "gpt-4o-mini~status=content_filter"), entry(fake, "lax", "x")],
        content_policy_fallbacks=[{"strict": ["lax"]}],
    )
    routers.append(router)
    assert served_by(await router.acompletion("strict", MESSAGES)) == "lax[0]"


async def test_default_fallbacks_apply_to_groups_without_rules(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = Router(
        [entry(fake, "a", "gpt-4o-mini~status=503"), entry(fake, "spare", "gpt-4o-mini")],
        default_fallbacks=["spare"],
    )
    routers.append(router)
    assert served_by(await router.acompletion("a", MESSAGES)) == "spare[0]"


async def test_max_fallbacks_bounds_the_chain_and_the_first_error_is_raised(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = Router(
        [
            entry(fake, "a", "m~status=500"),
            entry(fake, "b", "m~status=503"),
            entry(fake, "c", "m"),
        ],
        fallbacks=[{"a": ["b", "c"]}],
        max_fallbacks=1,
    )
    routers.append(router)
    with pytest.raises(ProviderError):
        await router.acompletion("a", MESSAGES)
    assert fake.state.model_counts["m"] == 0


async def test_a_bad_request_is_neither_retried_nor_falls_back(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = Router(
        [entry(fake, "a", "m~status=400"), entry(fake, "b", "m")],
        num_retries=3,
        fallbacks=[{"a": ["b"]}],
    )
    routers.append(router)
    with pytest.raises(InvalidRequest):
        await router.acompletion("a", MESSAGES)
    assert (fake.state.model_counts["m~status=400"], fake.state.model_counts["m"]) == (1, 0)


async def test_cost_based_picks_the_cheapest_and_leaves_it_while_it_cools_down(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    cheap = "gpt-4o-mini~fail_first=2"
    router = Router(
        [
            entry(fake, "g", cheap, input_cost_per_token=1e-7, output_cost_per_token=1e-7),
            entry(fake, "g", "gpt-4o", input_cost_per_token=1e-5, output_cost_per_token=1e-5),
        ],
        routing_strategy="cost-based-routing",
        num_retries=1,
        allowed_fails=1,
        cooldown_time=0.5,
    )
    routers.append(router)
    # Two failures of the cheap one (each retried on the other) cool it down.
    assert [served_by(await router.acompletion("g", MESSAGES)) for _ in range(2)] == [
        "g[1]",
        "g[1]",
    ]
    response = await router.acompletion("g", MESSAGES)
    assert served_by(response) == "g[1]"
    assert response.hidden_params["attempts"] == 1  # the cooled-down one was not tried
    assert fake.state.model_counts[cheap] == 2
    store = router._engine().store

    async def cooled_down() -> bool:
        return (await store.snapshot("g", ["g[0]"]))["g[0]"].cooldown_s == 0

    await eventually(cooled_down, what="the cheap deployment's cooldown to end")
    assert served_by(await router.acompletion("g", MESSAGES)) == "g[0]"


async def test_least_busy_spreads_concurrent_requests(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    import asyncio

    router = Router(
        [entry(fake, "g", "m~latency=0.2") for _ in range(3)], routing_strategy="least-busy"
    )
    routers.append(router)
    responses = await asyncio.gather(*(router.acompletion("g", MESSAGES) for _ in range(6)))
    counts = {name: 0 for name in ("g[0]", "g[1]", "g[2]")}
    for response in responses:
        counts[served_by(response)] += 1
    assert sorted(counts.values()) == [2, 2, 2]


async def test_round_robin_takes_turns(fake: FakeUpstream, routers: list[Router]) -> None:
    router = Router([entry(fake, "g", "m") for _ in range(3)], routing_strategy="round-robin")
    routers.append(router)
    served = [served_by(await router.acompletion("g", MESSAGES)) for _ in range(6)]
    assert served[:3] == served[3:] and len(set(served)) == 3


async def test_pre_call_checks_skip_a_deployment_the_prompt_does_not_fit(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = Router(
        [
            entry(fake, "g", "tiny", model_info={"max_input_tokens": 5}),
            entry(fake, "g", "roomy", model_info={"max_input_tokens": 100_000}),
        ],
        enable_pre_call_checks=True,
    )
    routers.append(router)
    long_prompt = [{"role": "user", "content": "word " * 200}]
    served = {served_by(await router.acompletion("g", long_prompt)) for _ in range(5)}
    assert served == {"g[1]"}


async def test_a_prompt_no_deployment_fits_is_a_context_window_error(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = Router(
        [entry(fake, "g", "tiny", model_info={"max_input_tokens": 5})],
        enable_pre_call_checks=True,
    )
    routers.append(router)
    with pytest.raises(ContextWindowExceeded):
        await router.acompletion("g", [{"role": "user", "content": "word " * 200}])
    assert fake.state.request_count == 0


async def test_rpm_limit_sends_the_overflow_elsewhere(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = Router(
        [entry(fake, "g", "limited", rpm=2), entry(fake, "g", "open", rpm=1000)],
        routing_strategy="usage-based-routing-v2",
    )
    routers.append(router)
    for _ in range(8):
        await router.acompletion("g", MESSAGES)
    assert fake.state.model_counts["limited"] <= 2
    assert fake.state.model_counts["open"] >= 6


async def test_a_stream_is_retried_before_its_first_chunk(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    model = "m~status=500~fail_first=1"
    router = Router([entry(fake, "g", model)], num_retries=1, retry_after=0.01)
    routers.append(router)
    stream = await router.acompletion("g", MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]  # type: ignore[union-attr]
    assert chunks and fake.state.model_counts[model] == 2


async def test_a_stream_is_not_retried_after_its_first_chunk(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    model = "m~stream_error_after=2~chunk_delay=0.05"
    router = Router([entry(fake, "g", model)], num_retries=3, fallbacks=[{"g": ["g"]}])
    routers.append(router)
    stream = await router.acompletion("g", MESSAGES, stream=True)
    received = []
    with pytest.raises(Exception):  # noqa: B017  # the provider's in-stream error, whatever class
        async for chunk in stream:  # type: ignore[union-attr]
            received.append(chunk)
    assert received
    assert fake.state.model_counts[model] == 1


async def test_routers_sharing_redis_share_cooldowns(
    fake: FakeUpstream, routers: list[Router], keys: Keys
) -> None:
    model_list = [entry(fake, "g", "bad~status=500"), entry(fake, "g", "good")]
    settings: dict[str, Any] = {
        "routing_strategy": "round-robin",
        "allowed_fails": 0,
        "cooldown_time": 30,
        "redis_url": REDIS_URL,
        "namespace": keys.ns,
    }
    one, other = Router(model_list, **settings), Router(model_list, **settings)
    routers.extend([one, other])
    for _ in range(2):  # round-robin reaches `bad` within two requests; one failure cools it
        try:
            await one.acompletion("g", MESSAGES)
        except ProviderError:
            break
    assert fake.state.model_counts["bad~status=500"] == 1
    served = {served_by(await other.acompletion("g", MESSAGES)) for _ in range(4)}
    assert served == {"g[1]"}
    assert fake.state.model_counts["bad~status=500"] == 1


async def test_a_stream_abandoned_without_closing_gives_its_slot_back(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    model = "m~chunks=10~chunk_delay=0.02"
    router = Router([entry(fake, "g", model, model_info={"id": "d"})])
    routers.append(router)
    stream = await router.acompletion("g", MESSAGES, stream=True)
    read = 0
    async for _chunk in stream:  # type: ignore[union-attr]
        read += 1
        if read == 3:
            break  # and never aclose(), as much LiteLLM-style code does
    store = router._engine().store
    assert (await store.snapshot("g", ["d"]))["d"].in_flight == 1
    del stream, _chunk
    gc.collect()

    async def slot_given_back() -> bool:
        return (await store.snapshot("g", ["d"]))["d"].in_flight == 0

    await eventually(slot_given_back, what="the abandoned stream's slot")
