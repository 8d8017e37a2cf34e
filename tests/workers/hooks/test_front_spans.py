"""The spans only a front door sees end (its relays, its own answers), kept there as records
and put onto the finished-request stream in batches (workers/hooks/front_spans.py), on a real
Redis: what is recorded and what is not, what a Redis outage keeps and drops (a stop it never
answers included), that the consumer gives the records to the span exports alone while the
ledger skips them, and that the records a span export gives up on are counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import textwrap
import time
from collections.abc import AsyncIterator

import msgspec
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from broker import tracing as front_tracing
from tests.broker import callback_targets
from tests.broker.harness import make_config, start_front_door
from tests.broker.otlp_receiver import OtlpReceiver
from tests.local_http import serve
from workers.hooks import hook_metrics
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


class SilentRedis:
    """A Redis that stopped answering (hung, paused, behind a dead proxy): a TCP server on
    127.0.0.1 that accepts each connection and reads what is sent, never replying."""

    def __init__(self) -> None:
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._handlers: list[asyncio.Task[object]] = []
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> SilentRedis:
        self._server = await asyncio.start_server(self._swallow, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"
        return self

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.append(task)
        self._writers.append(writer)
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass
        writer.close()

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()


async def test_a_stop_waits_for_a_redis_that_stopped_answering_no_longer_than_the_grace(
    namespace: str,
    redis: Redis,
    keys: Keys,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The stopping front door's last flush (broker/tracing.py `tracing_ctx`) gives up after
    SHUTDOWN_GRACE_S; the records it could not put onto the stream stay pending, none of
    them counted as dropped, and how many is logged."""
    grace_s, margin_s = 0.5, 1.5
    monkeypatch.setattr(front_tracing, "SHUTDOWN_GRACE_S", grace_s)
    general = textwrap.dedent(
        """\
        litellm_settings:
          callbacks: ["otel"]
        callback_settings:
          otel: {endpoint: "http://127.0.0.1:9/v1/traces", export_interval_s: 3600}
        """
    )  # the periodic flush never runs: the stop's is the one
    door = await start_front_door(make_config("http://127.0.0.1:9/v1", namespace, general=general))
    tracing = door.app[front_tracing.FRONT_TRACING]
    async with SilentRedis() as silent:
        hung = Redis.from_url(silent.url)
        door.front.redis = hung  # the front door's current client, as a Redis outage swaps it
        for status in (200, 201, 202):
            _relayed(tracing, status=status)
        started = time.monotonic()
        async with asyncio.timeout(grace_s + margin_s):  # without the bound: hangs, fails here
            await door.stop()
        stopped_after_s = time.monotonic() - started
        await hung.aclose()
    assert silent.connections >= 1  # the flush did reach the Redis that never answered
    assert grace_s <= stopped_after_s < grace_s + margin_s
    # Kept, in order, not dropped: the flush's batch went back to the queue when cut off.
    assert [r.status for r in tracing.pending] == [200, 201, 202]
    assert tracing.dropped_spans == 0
    assert await redis.xlen(keys.tenancy.ledger) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "stopping with 3 span records not on the stream" in warned


@contextlib.asynccontextmanager
async def refusing_collector() -> AsyncIterator[tuple[str, list[int]]]:
    """A collector that answers every export 500 (not one the OTLP exporter retries itself:
    each attempt fails at once). Its URL and the size of each body refused."""
    refused: list[int] = []

    async def traces(request: web.Request) -> web.Response:
        refused.append(len(await request.read()))
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    async with serve(app) as base_url:
        yield f"{base_url}/v1/traces", refused


async def test_front_door_records_a_span_export_gives_up_on_are_counted(
    redis: Redis, keys: Keys
) -> None:
    async with refusing_collector() as (url, refused):
        hooks = ServiceHooks.from_config(
            success_callback=[],
            failure_callback=[],
            callbacks=["otel"],
            turn_off_message_logging=False,
            settings=CallbackSettings(otel=OtelCallback(endpoint=url), retry_for_s=0.2, linger_s=0),
        )
        assert hooks is not None
        consumer = CallbackConsumer(redis, keys, hooks, "w1")
        registry = CollectorRegistry()
        hook_metrics.register(registry, consumer)
        await finished_events.ensure_group(redis, keys.tenancy.ledger, TenancyKeys.CALLBACKS_GROUP)
        tracing = FrontDoorTracing(OtelCallback())
        tracing.bind(lambda: redis, keys)
        _relayed(tracing, status=200)
        _relayed(tracing, status=502)
        teams = tracing.start(CLIENT)
        teams.team_id = "team-a"  # a second item of the entry (one per team), in one share
        tracing.answered_here(teams, "/v1/embeddings", 429)
        await tracing.flush()
        assert await consumer.step() == 1  # one entry, three records
        await consumer.aclose()
    # Retried for retry_for_s, then given up: every record counted, the entry acknowledged.
    assert len(refused) >= 2 and all(refused)  # each attempt sent the spans, was refused
    assert consumer.failed["otel"] == len(refused)
    assert consumer.front_spans_given_up == 3
    assert consumer.given_up == 0  # no request's event among them
    callbacks = TenancyKeys.CALLBACKS_GROUP
    assert await finished_events.backlog(redis, keys.tenancy.ledger, callbacks) == 0
    # What Prometheus scrapes from a worker (workers/hooks/hook_metrics.py).
    assert registry.get_sample_value("switchboard_callback_front_spans_given_up_total") == 3
