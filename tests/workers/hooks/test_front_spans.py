"""The spans only a front door sees end (its relays, its own answers), kept there as records
and put onto the finished-request stream in batches (workers/hooks/front_spans.py), on a real
Redis: what is recorded and what is not, what a Redis outage keeps and drops, and that the
consumer gives the records to the span exports alone while the ledger skips them."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
from redis.asyncio import Redis

from tests.broker import callback_targets
from tests.broker.otlp_receiver import OtlpReceiver
from workers.hooks.consumer import CallbackConsumer
from workers.hooks.front_spans import FrontDoorTracing
from workers.hooks.service import ServiceHooks
from workers.redis_streams import Keys, TenancyKeys, finished_events
from workers.settings.hooks import CallbackSettings, OtelCallback
from workers.tenancy import events
from workers.tenancy.ledger import _decode

CLIENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UNSAMPLED = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
CLOSED_PORT = "redis://127.0.0.1:9/0"


def _relayed(tracing: FrontDoorTracing, client: str | None = CLIENT, status: int = 200) -> None:
    trace = tracing.start(client)
    trace.queued()
    trace.first_byte_ns = time.time_ns()
    trace.relayed(status)
    tracing.relayed(trace, 321, time.time_ns())


async def _entries(redis: Redis, keys: Keys) -> list[list[events.FrontSpan]]:
    entries = await redis.xrange(keys.tenancy.ledger)
    return [events.decode_front_spans(f[TenancyKeys.FRONT_SPANS_FIELD]) for _, f in entries]


async def test_sampled_relays_and_answers_go_onto_the_stream_in_one_entry(
    redis: Redis, keys: Keys
) -> None:
    tracing = FrontDoorTracing(OtelCallback())
    tracing.bind(lambda: redis, keys)
    _relayed(tracing)
    _relayed(tracing, UNSAMPLED)  # not sampled: nothing kept
    answered = tracing.start(CLIENT)
    answered.team_id = "team-a"
    tracing.answered_here(answered, "/v1/embeddings", 400)
    assert len(tracing.pending) == 2
    await tracing.flush()
    [records] = await _entries(redis, keys)
    relay, server = records
    assert relay.route == "" and relay.sent_bytes == 321 and relay.status == 200
    assert relay.traceparent[3:35] == CLIENT[3:35] and len(relay.span_id) == 16
    assert 0 < relay.ttfb_ns <= relay.end_ns - relay.start_ns + 10**9
    assert server.route == "/v1/embeddings" and server.status == 400
    assert server.parent_span == CLIENT[36:52] and server.team_id == "team-a"
    assert not tracing.pending
    await tracing.flush()  # nothing new: no entry
    assert await redis.xlen(keys.tenancy.ledger) == 1


async def test_a_redis_outage_keeps_the_records_for_retry_for_s_then_drops_them(
    redis: Redis, keys: Keys
) -> None:
    away = Redis.from_url(CLOSED_PORT)
    current = [away]
    tracing = FrontDoorTracing(OtelCallback(retry_for_s=0.3))
    tracing.bind(lambda: current[0], keys)
    await tracing.flush()  # nothing kept: the clock of what is kept starts now
    _relayed(tracing)
    await tracing.flush()
    assert len(tracing.pending) == 1 and tracing.dropped_spans == 0  # kept, for now
    current[0] = redis  # back within retry_for_s: delivered
    await tracing.flush()
    assert not tracing.pending and len(await _entries(redis, keys)) == 1
    current[0] = away
    _relayed(tracing)
    await asyncio.sleep(0.35)  # longer than retry_for_s without Redis taking any
    await tracing.flush()
    assert not tracing.pending and tracing.dropped_spans == 1
    await away.aclose()


async def test_past_max_queue_the_oldest_record_goes_counted() -> None:
    tracing = FrontDoorTracing(OtelCallback(max_queue=2))
    for status in (200, 201, 202):
        _relayed(tracing, status=status)
    assert [r.status for r in tracing.pending] == [201, 202]
    assert tracing.dropped_spans == 1


async def test_the_consumer_gives_them_to_the_span_exports_alone_and_the_ledger_skips_them(
    redis: Redis, keys: Keys
) -> None:
    callback_targets.proxy_handler_instance.events.clear()
    async with OtlpReceiver() as receiver:
        hooks = ServiceHooks.from_config(
            success_callback=[],
            failure_callback=[],
            callbacks=["otel", "tests.broker.callback_targets.proxy_handler_instance"],
            turn_off_message_logging=False,
            settings=CallbackSettings(otel=OtelCallback(endpoint=receiver.url)),
        )
        assert hooks is not None
        consumer = CallbackConsumer(redis, keys, hooks, "w1")
        await finished_events.ensure_group(redis, keys.tenancy.ledger, TenancyKeys.CALLBACKS_GROUP)
        tracing = FrontDoorTracing(OtelCallback())
        tracing.bind(lambda: redis, keys)
        _relayed(tracing)
        tracing.answered_here(tracing.start(CLIENT), "/v1/chat/completions", 429)
        await tracing.flush()
        entries = await redis.xrange(keys.tenancy.ledger)
        assert await consumer.step() == 1  # one entry
        await consumer.aclose()
    relay, server = sorted(receiver.spans, key=lambda s: s.name, reverse=True)
    assert relay.name == "switchboard.relay" and relay.trace_id == CLIENT[3:35]
    assert relay.attributes["switchboard.relay.bytes"] == 321
    assert server.name == "POST /v1/chat/completions" and server.parent_id == CLIENT[36:52]
    assert server.attributes["http.response.status_code"] == 429
    # Not a request's event: no other callback gets it, and it counts as none offered.
    assert callback_targets.proxy_handler_instance.events == []
    assert consumer.offered == 0 and consumer.delivered["otel"] == 0
    # The ledger's decoding skips it: no spend row, nothing logged as malformed.
    assert len(entries) == 1 and _decode(entries) == ([], [])


@pytest.mark.parametrize("name", ["jsonl", "webhook", "langfuse"])
@pytest.mark.parametrize("builds_builtins", [True, False])
def test_a_builtin_named_without_its_section_fails_the_start_built_or_not(
    name: str, builds_builtins: bool
) -> None:
    """A front door only names its built-ins (it builds no exporter), yet refuses the same
    configs as a worker, which builds them."""
    with pytest.raises(ValueError, match=f"callback_settings.{name} section"):
        ServiceHooks.from_config(
            success_callback=[name],
            failure_callback=[],
            callbacks=[],
            turn_off_message_logging=False,
            settings=CallbackSettings(),
            builds_builtins=builds_builtins,
        )


async def test_records_that_arrive_while_a_flush_is_in_flight_stay_pending(
    redis: Redis, keys: Keys
) -> None:
    """The cap drops only what is still pending: a batch being sent is off the queue, so a
    record arriving meanwhile neither pushes it out nor is removed in its place."""
    tracing = FrontDoorTracing(OtelCallback(max_queue=2))
    _relayed(tracing, status=200)
    _relayed(tracing, status=201)

    arrived: list[bool] = []

    def arriving() -> Redis:  # called as the XADD is made: a request ends meanwhile
        if not arrived:
            arrived.append(True)
            _relayed(tracing, status=202)
        return redis

    tracing.bind(arriving, keys)
    await tracing.flush()
    # Both batches went: the one in flight whole, then the record that came meanwhile.
    sent = [[r.status for r in records] for records in await _entries(redis, keys)]
    assert sent == [[200, 201], [202]]
    assert not tracing.pending and tracing.dropped_spans == 0


async def test_each_record_ages_out_on_its_own_while_redis_is_away(keys: Keys) -> None:
    away = Redis.from_url(CLOSED_PORT)
    tracing = FrontDoorTracing(OtelCallback(retry_for_s=60))
    tracing.bind(lambda: away, keys)
    _relayed(tracing, status=200)
    old = tracing.pending[0]
    tracing.pending[0] = msgspec.structs.replace(old, end_ns=old.end_ns - 61 * 10**9)
    _relayed(tracing, status=201)
    await tracing.flush()
    # The one older than retry_for_s is dropped; the new one waits for Redis.
    assert [r.status for r in tracing.pending] == [201] and tracing.dropped_spans == 1
    await away.aclose()
