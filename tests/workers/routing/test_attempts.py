"""One request's attempts (workers/routing/attempts.py): where a failed request got to is a
typed field of its error, a stream served by a fallback gives its slot back in the group
that served it, and a stream abandoned unclosed is released by a task the engine owns."""

from __future__ import annotations

import asyncio
import gc

import pytest

from broker import Router
from tests.workers.routing.test_router_sdk import MESSAGES, entry
from workers.errors import ProviderError
from workers.routing.attempts import Outcome
from workers.sdk.stream import ChatStream
from workers.testing.server import FakeUpstream


def a_falls_back_to_b(
    fake: FakeUpstream, routers: list[Router], a_model: str, b_model: str
) -> Router:
    """Group a (deployment "first") falls back to group b (deployment "second")."""
    router = Router(
        [
            entry(fake, "a", a_model, model_info={"id": "first"}),
            entry(fake, "b", b_model, model_info={"id": "second"}),
        ],
        num_retries=0,
        fallbacks=[{"a": ["b"]}],
    )
    routers.append(router)
    return router


async def in_flight(router: Router, group: str, deployment: str) -> int:
    return (await router._engine().store.snapshot(group, [deployment]))[deployment].in_flight


async def test_a_stream_served_by_a_fallback_gives_its_slot_back_in_that_group(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = a_falls_back_to_b(fake, routers, "m~status=500", "m~chunks=3")
    stream = await router.acompletion("a", MESSAGES, stream=True)
    assert isinstance(stream, ChatStream)
    chunks = [chunk async for chunk in stream]
    assert chunks and stream.hidden_params["deployment"] == "second"
    assert await in_flight(router, "b", "second") == 0
    assert await in_flight(router, "a", "first") == 0


async def test_a_failed_request_carries_where_it_got_to_as_typed_fields(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = a_falls_back_to_b(fake, routers, "m~status=500", "m~status=503")
    with pytest.raises(ProviderError) as raised:
        await router.acompletion("a", MESSAGES)
    error = raised.value
    assert isinstance(error.outcome, Outcome)
    assert (error.outcome.attempts, error.outcome.fallbacks) == (2, 1)
    assert error.outcome.deployment.name == "second"  # the last one tried
    assert error.deployment is not None and error.deployment.name == "first"


async def test_a_stream_abandoned_unclosed_is_released_by_a_task_its_engine_owns(
    fake: FakeUpstream, routers: list[Router]
) -> None:
    router = a_falls_back_to_b(fake, routers, "m~chunks=10~chunk_delay=0.02", "m")
    chunks = await router.acompletion("a", MESSAGES, stream=True)
    await anext(aiter(chunks))  # type: ignore[arg-type]  # then never aclose()
    assert await in_flight(router, "a", "first") == 1
    del chunks
    gc.collect()
    await asyncio.sleep(0)  # the finaliser hands the release to the engine on its loop
    await router._engine().aclose()  # which waits for it: nothing is left running unowned
    assert await in_flight(router, "a", "first") == 0
