"""The callbacks' consumer group on the finished-request stream (issue #19), on a real
Redis: the stream is shared with the spend ledger's group, so an entry leaves only once both
are done with it; the callbacks' backlog is capped (oldest skipped and counted); a batch is
acknowledged only once delivered, and a failing callback is retried with backoff."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.broker import callback_targets
from workers import envelopes
from workers.hooks.consumer import CallbackConsumer
from workers.hooks.service import ServiceHooks
from workers.redis_streams import Keys, TenancyKeys, finished_events
from workers.settings.hooks import CallbackSettings
from workers.tenancy import events
from workers.tenancy.events import FinishedCall

LEDGER = TenancyKeys.LEDGER_GROUP
CALLBACKS = TenancyKeys.CALLBACKS_GROUP


@pytest.fixture(autouse=True)
def clean_targets() -> Iterator[None]:
    callback_targets.flaky_instance.__init__()  # type: ignore[misc]  # reset the module's instance
    callback_targets.proxy_handler_instance.events.clear()
    yield


def _call(i: int) -> bytes:
    body = b'{"model": "gpt-test", "messages": [{"role": "user", "content": "q%d"}]}' % i
    return events.encode(
        FinishedCall(
            kind=envelopes.KIND_CHAT,
            ingress=envelopes.INGRESS_CHAT,
            model_group="gpt-test",
            stream=False,
            lane="default",
            enqueued_ms=1_000,
            started_ms=1_005,
            ended_ms=1_050,
            end=envelopes.RESPONSE,
            body=body,
            response=b'{"id": "x", "choices": [], "usage": {"prompt_tokens": 3}}',
            meta=envelopes.Meta(deployment="gpt-test[0]", prompt_tokens=3, cost_usd=0.001),
        )
    )


async def _add(redis: Redis, keys: Keys, n: int, start: int = 0) -> None:
    pipe = redis.pipeline(transaction=False)
    for i in range(start, start + n):
        finished_events.append_call(pipe, keys, f"req-{i}", _call(i))
    await pipe.execute()


def _hooks(callbacks: list[str], **settings: object) -> ServiceHooks:
    hooks = ServiceHooks.from_config(
        success_callback=[],
        failure_callback=[],
        callbacks=callbacks,
        turn_off_message_logging=False,
        settings=CallbackSettings(**settings),  # type: ignore[arg-type]  # test values
    )
    assert hooks is not None
    return hooks


async def test_an_entry_leaves_the_stream_only_once_both_groups_are_done(
    redis: Redis, keys: Keys
) -> None:
    stream = keys.tenancy.ledger
    await _add(redis, keys, 5)
    for group in (LEDGER, CALLBACKS):
        await finished_events.ensure_group(redis, stream, group)
    ledger = await finished_events.read_group(redis, stream, LEDGER, "l1", 10, None)
    # The ledger is done with all five; the callbacks have read none: all stay.
    left = await finished_events.ack_and_trim(redis, stream, LEDGER, [i for i, _ in ledger])
    assert left == 5
    assert await finished_events.backlog(redis, stream, LEDGER) == 0
    assert await finished_events.backlog(redis, stream, CALLBACKS) == 5
    read = await finished_events.read_group(redis, stream, CALLBACKS, "c1", 3, None)
    left = await finished_events.ack_and_trim(redis, stream, CALLBACKS, [i for i, _ in read])
    assert left == 2  # the three both groups acked are gone
    # An entry the callbacks hold unacked (pending) keeps everything after it too.
    await _add(redis, keys, 2, start=5)
    rest = await finished_events.read_group(redis, stream, CALLBACKS, "c1", 10, None)
    ledger = await finished_events.read_group(redis, stream, LEDGER, "l1", 10, None)
    await finished_events.ack_and_trim(redis, stream, LEDGER, [i for i, _ in ledger])
    await finished_events.ack_and_trim(redis, stream, CALLBACKS, [i for i, _ in rest[1:]])
    assert await redis.xlen(stream) == 4
    assert await finished_events.ack_and_trim(redis, stream, CALLBACKS, [rest[0][0]]) == 0


async def test_the_backlog_is_held_to_the_cap_the_oldest_skipped_and_counted(
    redis: Redis, keys: Keys
) -> None:
    hooks = _hooks(["tests.broker.callback_targets.proxy_handler_instance"], max_queue=4)
    consumer = CallbackConsumer(redis, keys, hooks, "w1")
    await finished_events.ensure_group(redis, keys.tenancy.ledger, LEDGER)
    await finished_events.ensure_group(redis, keys.tenancy.ledger, CALLBACKS)
    await _add(redis, keys, 10)
    while await consumer.step():
        pass
    seen = [
        kwargs["litellm_call_id"] for _, kwargs, _ in callback_targets.proxy_handler_instance.events
    ]
    assert seen == [f"req-{i}" for i in range(6, 10)]  # the newest four
    assert consumer.dropped == 6 and consumer.offered == 4
    # The group's backlog is known exactly after the skip (nothing left for it).
    assert await finished_events.backlog(redis, keys.tenancy.ledger, CALLBACKS) == 0
    # The ledger's group still has all ten: the cap skips them for the callbacks only.
    assert await finished_events.backlog(redis, keys.tenancy.ledger, LEDGER) == 10
    assert await redis.xlen(keys.tenancy.ledger) == 10


async def test_a_failing_callback_is_retried_and_its_batch_acked_only_after(
    redis: Redis, keys: Keys
) -> None:
    callback_targets.flaky_instance.fail_times = 2
    hooks = _hooks(["tests.broker.callback_targets.flaky_instance"])
    consumer = CallbackConsumer(redis, keys, hooks, "w1")
    await finished_events.ensure_group(redis, keys.tenancy.ledger, CALLBACKS)
    await _add(redis, keys, 3)
    assert await consumer.step() == 3
    # Two failed attempts, then each event once, in order; nothing left on the stream.
    assert callback_targets.flaky_instance.seen == ["req-0", "req-1", "req-2"]
    assert consumer.failed["tests.broker.callback_targets.flaky_instance"] == 2
    assert consumer.given_up == 0
    assert await redis.xlen(keys.tenancy.ledger) == 0


async def test_a_callback_that_keeps_failing_is_given_up_and_counted(
    redis: Redis, keys: Keys
) -> None:
    callback_targets.flaky_instance.fail_times = 100
    hooks = _hooks(["tests.broker.callback_targets.flaky_instance"])
    consumer = CallbackConsumer(redis, keys, hooks, "w1")
    await finished_events.ensure_group(redis, keys.tenancy.ledger, CALLBACKS)
    await _add(redis, keys, 2)
    await consumer.step()
    assert consumer.given_up == 2
    assert await finished_events.backlog(redis, keys.tenancy.ledger, CALLBACKS) == 0


async def test_a_callbacks_group_nobody_reads_any_more_stops_holding_the_stream(
    redis: Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = keys.tenancy.ledger
    await _add(redis, keys, 3)
    for group in (LEDGER, CALLBACKS):
        await finished_events.ensure_group(redis, stream, group)
    await finished_events.read_group(redis, stream, CALLBACKS, "gone-worker", 1, None)
    ledger = await finished_events.read_group(redis, stream, LEDGER, "l1", 10, None)
    ids = [i for i, _ in ledger]
    # Its one consumer was seen just now: the group still holds what it has not acked.
    monkeypatch.setattr(finished_events, "ABANDONED_MS", 60_000)
    assert await finished_events.ack_and_trim(redis, stream, LEDGER, ids) == 3
    # Callbacks turned off for good (no consumer seen for the threshold): the ledger trims.
    monkeypatch.setattr(finished_events, "ABANDONED_MS", 0)
    assert await finished_events.ack_and_trim(redis, stream, LEDGER, []) == 3  # no ids: no trim
    assert await finished_events.ack_and_trim(redis, stream, LEDGER, ids[:1]) == 0


async def test_a_consumer_standing_by_reads_only_once_the_others_fall_behind(
    redis: Redis, keys: Keys
) -> None:
    """A serving worker beside the callbacks process: it leaves the events to that process
    while its reading keeps up, and reads when the oldest unread event is `stand_by_s` old.
    A quiet spell is not lag: the first event after one is left to the callbacks process
    (read from the stream, as Redis 6.2's XINFO has no `lag`)."""
    stream = keys.tenancy.ledger
    hooks = _hooks(["tests.broker.callback_targets.proxy_handler_instance"], linger_s=0)
    await finished_events.ensure_group(redis, stream, CALLBACKS)
    worker = CallbackConsumer(redis, keys, hooks, "worker", stand_by_s=60)
    callbacks = CallbackConsumer(redis, keys, hooks, "callbacks")
    # Written 5 minutes ago and read by nobody: far behind, the worker reads it.
    seconds, _ = await redis.time()
    fields = {TenancyKeys.REQUEST_FIELD: "req-0", TenancyKeys.CALL_FIELD: _call(0)}
    await redis.xadd(stream, fields, id=f"{(seconds - 300) * 1000}-0")  # type: ignore[arg-type]
    assert await finished_events.read_behind_ms(redis, stream, CALLBACKS) >= 300_000
    assert await worker.step() == 1
    assert await finished_events.read_behind_ms(redis, stream, CALLBACKS) == 0
    # After the quiet spell (what was read last is 5 minutes old) a new event is fresh: the
    # worker stands by, with it unread and after the callbacks process read it.
    await _add(redis, keys, 1, start=1)
    assert 0 < await finished_events.read_behind_ms(redis, stream, CALLBACKS) < 60_000
    assert await worker.step() == 0
    assert await callbacks.step() == 1
    assert await worker.step() == 0
    await _add(redis, keys, 1, start=2)
    assert await worker.step() == 0
    assert await callbacks.step() == 1
    seen = [
        kwargs["litellm_call_id"] for _, kwargs, _ in callback_targets.proxy_handler_instance.events
    ]
    assert seen == ["req-0", "req-1", "req-2"]


async def test_a_stopped_consumer_leaves_the_group_unless_it_holds_events_or_is_the_last(
    redis: Redis, keys: Keys
) -> None:
    stream = keys.tenancy.ledger
    await _add(redis, keys, 2)
    await finished_events.ensure_group(redis, stream, CALLBACKS)
    [(held, _)] = await finished_events.read_group(redis, stream, CALLBACKS, "a", 1, None)
    [(done, _)] = await finished_events.read_group(redis, stream, CALLBACKS, "b", 1, None)
    await finished_events.ack_and_trim(redis, stream, CALLBACKS, [done])

    async def names() -> list[str]:
        found: Any = await redis.xinfo_consumers(stream, CALLBACKS)
        return sorted(
            c["name"].decode() if isinstance(c["name"], bytes) else c["name"] for c in found
        )

    # "a" holds an event: it stays, for the next reader to claim.
    assert not await finished_events.leave_group(redis, stream, CALLBACKS, "a")
    assert await finished_events.leave_group(redis, stream, CALLBACKS, "b")
    assert await names() == ["a"]
    # Done, but the last: it stays, so that the group's idle time still tells whether
    # anyone reads it (a group without consumers looks just made and holds the stream).
    await finished_events.ack_and_trim(redis, stream, CALLBACKS, [held])
    assert not await finished_events.leave_group(redis, stream, CALLBACKS, "a")
    assert await names() == ["a"]
