"""The figures stores: what one worker records, every worker reads (Redis), and the
in-memory twin behaves the same for one process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable
from typing import cast

import pytest
from redis.asyncio import Redis

from tests.conftest import RoundTrips
from tests.waiting import clear_of_minute_boundary, eventually
from workers.batching import WriteBatcher
from workers.redis_streams import Keys
from workers.routing import scripts
from workers.routing.figures import read_figures
from workers.routing.memory_store import MemoryFigures
from workers.routing.redis_store import RedisFigures
from workers.routing.store import AttemptResult, FiguresStore, Limits

NO_LIMITS = Limits()
FAIL_500 = AttemptResult(failure_class="InternalServerError", allowed_fails=1, cooldown_s=0.5)


@pytest.fixture(autouse=True)
async def one_clock_minute() -> None:
    """rpm and tpm count per clock minute; each test here counts inside one."""
    await clear_of_minute_boundary(needed_s=3.0)


async def inflight_fields(redis: Redis, keys: Keys) -> int:
    # redis-py types HLEN for its sync and async clients at once (`Awaitable[int] | int`).
    return await cast("Awaitable[int]", redis.hlen(keys.routing("g").inflight))


@pytest.fixture(params=["redis", "redis-batched", "memory"])
def store(request: pytest.FixtureRequest, redis: Redis, keys: Keys) -> FiguresStore:
    if request.param == "redis":
        return RedisFigures(redis, keys, "w1")
    if request.param == "redis-batched":  # as a worker runs it: on the reply writes' batcher
        return RedisFigures(redis, keys, "w1", batcher=WriteBatcher(redis))
    return MemoryFigures()


async def test_in_flight_counts_admissions_until_released(store: FiguresStore) -> None:
    assert await store.admit("g", "a", NO_LIMITS, 10) == "ok"
    assert await store.admit("g", "a", NO_LIMITS, 10) == "ok"
    figures = await store.snapshot("g", ["a", "b"])
    assert (figures["a"].in_flight, figures["b"].in_flight) == (2, 0)
    assert (figures["a"].rpm_used, figures["a"].tpm_used) == (2, 20)
    await store.release("g", "a", AttemptResult(latency_ms_per_token=10.0, tokens_delta=5))
    figures = await store.snapshot("g", ["a"])
    assert figures["a"].in_flight == 1
    assert figures["a"].tpm_used == 25
    assert figures["a"].latency_ms_per_token == 10.0


async def test_latency_is_a_moving_average_that_follows_a_slowdown(store: FiguresStore) -> None:
    for sample in (10.0, 10.0, 100.0, 100.0, 100.0):
        await store.admit("g", "a", NO_LIMITS, 1)
        await store.release("g", "a", AttemptResult(latency_ms_per_token=sample, ttft_ms=sample))
    figures = (await store.snapshot("g", ["a"]))["a"]
    assert figures.latency_ms_per_token is not None and 50 < figures.latency_ms_per_token < 100
    assert figures.ttft_ms == figures.latency_ms_per_token


async def test_failures_past_allowed_fails_cool_down_then_expire(store: FiguresStore) -> None:
    for expect_cooled in (False, True):
        assert await store.admit("g", "a", NO_LIMITS, 1) == "ok"
        assert await store.release("g", "a", FAIL_500) is expect_cooled
    assert await store.admit("g", "a", NO_LIMITS, 1) == "cooldown"
    figures = (await store.snapshot("g", ["a"]))["a"]
    assert 0 < figures.cooldown_s <= 0.5
    assert figures.minute_failures == 2  # the cooldown resets the allowance, not the count

    async def cooled_down() -> bool:
        return (await store.snapshot("g", ["a"]))["a"].cooldown_s == 0

    await eventually(cooled_down, what="the cooldown to end")
    assert await store.admit("g", "a", NO_LIMITS, 1) == "ok"


async def test_limits_refuse_admission(store: FiguresStore) -> None:
    assert await store.admit("g", "a", Limits(rpm=2), 1) == "ok"
    assert await store.admit("g", "a", Limits(rpm=2), 1) == "ok"
    assert await store.admit("g", "a", Limits(rpm=2), 1) == "rpm"
    assert await store.admit("g", "b", Limits(tpm=100), 60) == "ok"
    assert await store.admit("g", "b", Limits(tpm=100), 60) == "tpm"
    assert await store.admit("g", "c", Limits(max_parallel_requests=1), 1) == "ok"
    assert await store.admit("g", "c", Limits(max_parallel_requests=1), 1) == "parallel"
    await store.release("g", "c", AttemptResult())
    assert await store.admit("g", "c", Limits(max_parallel_requests=1), 1) == "ok"


async def test_round_robin_cursor_advances(store: FiguresStore) -> None:
    assert [await store.next_cursor("g") for _ in range(3)] == [1, 2, 3]


async def test_cooldown_set_by_one_worker_stops_the_others(redis: Redis, keys: Keys) -> None:
    one, other = RedisFigures(redis, keys, "w1"), RedisFigures(redis, keys, "w2")
    for _ in range(2):
        await one.admit("g", "a", NO_LIMITS, 1)
        await one.release("g", "a", FAIL_500)
    assert await other.admit("g", "a", NO_LIMITS, 1) == "cooldown"
    assert (await other.snapshot("g", ["a"]))["a"].is_cooling_down


async def test_rpm_limit_holds_across_workers_racing(redis: Redis, keys: Keys) -> None:
    stores = [RedisFigures(redis, keys, f"w{i}") for i in range(4)]
    answers = await asyncio.gather(
        *(store.admit("g", "a", Limits(rpm=5), 1) for store in stores for _ in range(5))
    )
    assert answers.count("ok") == 5


async def test_crashed_workers_in_flight_expires_with_its_liveness(
    redis: Redis, keys: Keys
) -> None:
    crashed = RedisFigures(redis, keys, "crashed", owner_ttl_s=0.3)
    alive = RedisFigures(redis, keys, "alive", owner_ttl_s=5)
    await crashed.admit("g", "a", NO_LIMITS, 1)
    await alive.admit("g", "a", NO_LIMITS, 1)
    groups = {"g": ["a"]}
    assert (await read_figures(redis, keys, groups)).get("g", "a").in_flight == 2

    async def only_the_living_count() -> bool:  # `crashed` never renews its liveness
        return (await read_figures(redis, keys, groups)).get("g", "a").in_flight == 1

    await eventually(only_the_living_count, what="the crashed owner's admission to expire")
    assert await inflight_fields(redis, keys) == 1  # the dead owner's field is gone


async def test_keep_alive_keeps_a_long_request_counted(redis: Redis, keys: Keys) -> None:
    store = RedisFigures(redis, keys, "w1", owner_ttl_s=0.3)
    await store.admit("g", "a", NO_LIMITS, 1)
    admitted_until_ms = await redis.zscore(keys.routing("g").owners, "w1")
    assert admitted_until_ms is not None
    renew = asyncio.create_task(store.keep_alive(["g"], 0.1))
    try:
        # The scenario: the request outlives the liveness its admission gave it.
        await eventually(
            lambda: time.time() * 1000 > admitted_until_ms + 200,
            what="the admission's own liveness to lapse",
        )
        assert (await store.snapshot("g", ["a"]))["a"].in_flight == 1
    finally:
        renew.cancel()
        await asyncio.gather(renew, return_exceptions=True)


async def test_read_figures_of_an_unused_group_is_all_zero(redis: Redis, keys: Keys) -> None:
    figures = await read_figures(redis, keys, {"g": ["a", "b"], "empty": []})
    assert figures.get("g", "b").in_flight == 0
    assert figures.get("g", "b").latency_ms_per_token is None
    assert figures.groups.keys() == {"g"}


async def test_batched_admissions_of_concurrent_requests_share_round_trips(
    redis: Redis, keys: Keys, round_trips: RoundTrips
) -> None:
    store = RedisFigures(redis, keys, "w1", batcher=WriteBatcher(redis))
    await store.admit("g", "a", NO_LIMITS, 1)  # the script is in Redis' cache from here on
    before = round_trips.count
    answers = await asyncio.gather(*(store.admit("g", "a", Limits(rpm=6), 1) for _ in range(8)))
    # One round trip for all eight, and the rpm limit still holds per call: 5 more fit.
    assert round_trips.count - before == 1
    assert sorted(answers) == ["ok"] * 5 + ["rpm"] * 3


async def test_a_script_redis_forgot_is_loaded_again(redis: Redis, keys: Keys) -> None:
    store = RedisFigures(redis, keys, "w1", batcher=WriteBatcher(redis))
    # A script body Redis has never seen stands for a flushed cache (SCRIPT FLUSH would
    # disturb other users of this server): the batched EVALSHA fails with NOSCRIPT.
    store._admit = redis.register_script(scripts.ACQUIRE + f"\n-- {uuid.uuid4().hex}\n")
    assert await store.admit("g", "a", NO_LIMITS, 1) == "ok"
    assert await store.admit("g", "a", NO_LIMITS, 1) == "ok"
    assert (await store.snapshot("g", ["a"]))["a"].in_flight == 2


async def test_an_unawaited_release_redis_forgot_the_script_of_still_lands(
    redis: Redis, keys: Keys
) -> None:
    store = RedisFigures(redis, keys, "w1", batcher=WriteBatcher(redis))
    assert await store.admit("g", "a", NO_LIMITS, 1) == "ok"
    store._release = redis.register_script(scripts.RELEASE + f"\n-- {uuid.uuid4().hex}\n")
    assert await store.release("g", "a", AttemptResult(tokens_delta=1)) is False
    await store.aclose()  # sends the batch; NOSCRIPT comes back; waits for the retry
    assert (await store.snapshot("g", ["a"]))["a"].in_flight == 0


async def test_a_batched_admission_whose_request_is_cancelled_gives_its_slot_back(
    redis: Redis, keys: Keys
) -> None:
    store = RedisFigures(redis, keys, "w1", batcher=WriteBatcher(redis))
    assert await store.admit("g", "a", NO_LIMITS, 1) == "ok"
    admitting = asyncio.create_task(store.admit("g", "a", NO_LIMITS, 1))
    await asyncio.sleep(0)  # queued on this turn's batch, which will go out regardless
    admitting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await admitting
    await store.aclose()  # the batch, then the release its answer called for
    assert (await store.snapshot("g", ["a"]))["a"].in_flight == 1


async def test_a_counted_admission_lands_before_its_release(redis: Redis, keys: Keys) -> None:
    store = RedisFigures(redis, keys, "w1", batcher=WriteBatcher(redis))
    await store.count_admission("g", "a", 5)  # returns before Redis has it
    await store.release("g", "a", AttemptResult(tokens_delta=2))  # in the same loop turn
    figures = (await store.snapshot("g", ["a"]))["a"]
    assert (figures.in_flight, figures.rpm_used, figures.tpm_used) == (0, 1, 7)


# Redis forgot the count's script (a restart, SCRIPT FLUSH), so the count is retried. Riding:
# its release went out behind it in the same batch, and the count's retry gives the slot
# back. Alone: past the ride's bound the count went out, was refused and is being retried
# when the release comes, which waits for that retry instead of reaching Redis first.
@pytest.mark.parametrize("pause_s", [0.0, 0.2], ids=["riding", "alone"])
async def test_a_count_redis_forgot_the_script_of_lands_before_its_release(
    redis: Redis, keys: Keys, pause_s: float
) -> None:
    store = RedisFigures(redis, keys, "w1", batcher=WriteBatcher(redis))
    store._admit = redis.register_script(scripts.ACQUIRE + f"\n-- {uuid.uuid4().hex}\n")
    await store.count_admission("g", "a", 1)
    await asyncio.sleep(pause_s)
    await store.release("g", "a", AttemptResult())
    await store.aclose()  # the retries
    figures = (await store.snapshot("g", ["a"]))["a"]
    assert (figures.in_flight, figures.rpm_used) == (0, 1)
    assert await inflight_fields(redis, keys) == 0


async def test_a_release_does_not_wait_for_admissions_counted_after_it(
    redis: Redis, keys: Keys
) -> None:
    # Under load there is always an admission in flight; a release that waited for all of
    # them would never finish.
    store = RedisFigures(redis, keys, "w1", batcher=WriteBatcher(redis))
    await store.count_admission("g", "a", 1)

    async def keep_admitting() -> None:
        while True:
            await store.count_admission("g", "a", 1)
            await asyncio.sleep(0)

    admitting = asyncio.create_task(keep_admitting())
    try:
        async with asyncio.timeout(5):
            await store.release("g", "a", AttemptResult())
    finally:
        admitting.cancel()
        await asyncio.gather(admitting, return_exceptions=True)


async def test_a_counted_admission_rides_its_release_in_one_round_trip(
    redis: Redis, keys: Keys, round_trips: RoundTrips
) -> None:
    # One request at a time: the count waits for the request's own release (and, in the
    # worker, its final record) instead of costing a round trip of its own.
    store = RedisFigures(redis, keys, "w1", batcher=WriteBatcher(redis))
    await store.count_admission("g", "a", 5)
    await asyncio.sleep(0.01)  # the upstream call; well within the ride's bound
    assert round_trips.count == 0
    async with asyncio.timeout(5):
        await store.release("g", "a", AttemptResult(tokens_delta=2))
        await store.aclose()
    assert round_trips.count == 1
    figures = (await store.snapshot("g", ["a"]))["a"]
    assert (figures.in_flight, figures.rpm_used, figures.tpm_used) == (0, 1, 7)


async def test_a_counted_admission_with_nothing_to_ride_lands_within_its_bound(
    redis: Redis, keys: Keys
) -> None:
    store = RedisFigures(redis, keys, "w1", batcher=WriteBatcher(redis))
    await store.count_admission("g", "a", 1)
    # A long stream: its count is in Redis long before its release.

    async def counted() -> bool:
        return await cast(Awaitable[int], redis.hlen(keys.routing("g").inflight)) == 1

    await eventually(counted, what="the count landing on its own")
    await store.release("g", "a", AttemptResult())
    await store.aclose()
    assert (await store.snapshot("g", ["a"]))["a"].in_flight == 0
