"""A dead worker's requests move on at once (issue #15): its entries are taken over by
consumer as soon as it is silent, a stream it had begun continues where the provider can
continue a partial answer, and ends with `worker_lost` where it cannot.

A dead worker is played by a "ghost" consumer: it reads an entry and writes the records a
worker would have written (the first chunks of a stream), then does nothing, with no
heartbeat or a heartbeat that stops. The worker that takes over is a real one."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.broker.harness import (
    FAST_CLAIMS,
    make_config,
    read_sse,
    service,
    start_worker,
    wait_until,
)
from workers import envelopes, redis_streams
from workers.envelopes import Meta, Record, decode_envelope
from workers.redis_streams import Keys, WorkerInfo
from workers.testing.server import FakeUpstream
from workers.wire import (
    ChunkChoice,
    Delta,
    FunctionCallDelta,
    ToolCallDelta,
    encode,
    new_chunk,
)

HELLO = [{"role": "user", "content": "hello"}]
# claim_idle_ms stays long: only a takeover by consumer can be quick enough for these tests.
SETTINGS = {**FAST_CLAIMS, "claim_idle_ms": 60_000, "renew_interval_ms": 500}
MODELS = """\
- model_name: claude
  litellm_params:
    model: anthropic/claude-haiku-4-5~chunks=8~chunk_delay=0.02
    api_base: {base}
    api_key: sk-ant-fake
- model_name: claude-fixed
  litellm_params:
    model: anthropic/claude-haiku-4-5~chunks=8
    api_base: {base}
    api_key: sk-ant-fake
    stream_continuation: false
- model_name: vllm
  litellm_params:
    model: hosted_vllm/gpt-4o-mini~vllm~chunks=8~chunk_delay=0.02
    api_base: {base}/v1
    api_key: sk-fake
- model_name: plain
  litellm_params:
    model: openai/gpt-4o-mini~chunks=8
    api_base: {base}/v1
    api_key: sk-fake
"""
ANSWERS = {
    "claude": "This is a fake reply from claude-haiku-4-5.",
    "claude-fixed": "This is a fake reply from claude-haiku-4-5.",
    "vllm": "This is a fake reply from gpt-4o-mini.",
    "plain": "This is a fake reply from gpt-4o-mini.",
}
# What the dead worker had sent: it ends in a space, which Anthropic refuses to end a
# prefill with, so the gateway holds it back and skips it from the continuation.
SENT = ["This is", " a fake "]


class Ghost:
    """A worker that takes an entry, writes the start of its stream, and dies."""

    def __init__(self, redis: Redis, keys: Keys, name: str = "ghost") -> None:
        self.redis = redis
        self.keys = keys
        self.name = name

    async def beat(self) -> None:
        """One heartbeat, as a live worker writes it (then no more)."""
        pipe = self.redis.pipeline(transaction=False)
        redis_streams.heartbeat(pipe, self.keys, self.name, WorkerInfo(), 5.0)
        await pipe.execute()

    async def begin(self, model: str, texts: list[str], tool_call: bool = False) -> str:
        (entry,) = await redis_streams.read_requests(
            self.redis, self.keys, self.name, ["default"], 1, None
        )
        envelope = decode_envelope(entry[2])
        chunks = [self._chunk(Delta(role="assistant", content=""))]
        chunks += [self._chunk(Delta(content=text)) for text in texts]
        if tool_call:
            # A tool call cut mid-arguments.
            function = FunctionCallDelta(name="get_weather", arguments='{"ci')
            call = ToolCallDelta(index=0, id="toolu_1", type="function", function=function)
            chunks.append(self._chunk(Delta(tool_calls=[call])))
        meta = Meta(deployment=f"{model}[0]", provider="fake", attempts=1, worker=self.name)
        record = Record(seq=1, chunks=chunks, meta=meta)
        pipe = self.redis.pipeline(transaction=False)
        redis_streams.append_record(
            pipe,
            self.keys,
            envelope.request_id,
            1,
            envelopes.encode(record),
            reply_to=envelope.reply_to,
            ttl_s=60,
        )
        await pipe.execute()
        return envelope.request_id

    @staticmethod
    def _chunk(delta: Delta) -> bytes:
        return encode(
            new_chunk("chatcmpl-ghost", 1700000000, "ghost-model", [ChunkChoice(delta=delta)])
        )


def config_for(fake: FakeUpstream, namespace: str, **settings: Any) -> Any:
    return make_config(
        fake.base_url + "/v1",
        namespace,
        settings={**SETTINGS, **settings},
        extra_models=MODELS.format(base=fake.base_url),
    )


async def stream_begun_by(
    ghost: Ghost, http: aiohttp.ClientSession, url: str, model: str, **begin: Any
) -> aiohttp.ClientResponse:
    body = {"model": model, "messages": HELLO, "stream": True}
    body["stream_options"] = {"include_usage": True}
    posted = asyncio.create_task(http.post(url + "/v1/chat/completions", json=body))
    lane = ghost.keys.lane("default")

    async def queued() -> bool:
        return int(await ghost.redis.xlen(lane)) == 1

    await wait_until(queued)
    await ghost.begin(model, SENT, **begin)
    response = await posted
    assert response.status == 200
    return response


def text_of(events: list[tuple[str | None, str]]) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for _, data in events
        if data.startswith("{") and "choices" in data
        for choice in json.loads(data).get("choices", [])
    )


@pytest.mark.parametrize("model", ["claude", "vllm"])
async def test_a_stream_whose_worker_died_continues_where_the_provider_can(
    fake: FakeUpstream, namespace: str, redis: Redis, model: str
) -> None:
    config = config_for(fake, namespace)
    keys = Keys(namespace)
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        response = await stream_begun_by(Ghost(redis, keys), http, door.url, model)
        # A worker starts; the ghost holds an entry and has no heartbeat: taken at once.
        worker = await start_worker(config)
        try:
            events = await asyncio.wait_for(read_sse(response), 20)
        finally:
            await worker.stop()
    assert events[-1][1] == "[DONE]"
    assert text_of(events) == ANSWERS[model]  # nothing repeated, nothing missing
    ids = [int(event_id or 0) for event_id, _ in events]
    assert ids == list(range(1, len(events) + 1))  # the sequence carries on
    chunks = [json.loads(data) for _, data in events[:-1]]
    # One stream: the continuation's chunks look like the ones the client already had.
    assert {(c["id"], c["model"]) for c in chunks} == {("chatcmpl-ghost", "ghost-model")}
    assert sum(1 for c in chunks for ch in c["choices"] if ch["delta"].get("role")) == 1
    # The provider got exactly what the client had been sent, as the assistant's prefix.
    (continuation,) = fake.requests
    prefix = continuation.json["messages"][-1]
    assert prefix["role"] == "assistant"
    sent = "".join(SENT)
    assert prefix["content"] == (sent.rstrip() if model == "claude" else sent)
    if model == "vllm":
        assert continuation.json["continue_final_message"] is True
        assert continuation.json["add_generation_prompt"] is False
    # Both attempts are counted: the continuation's usage plus the lost one's estimate.
    usage = chunks[-1]["usage"]
    rest = ANSWERS[model].removeprefix(sent.rstrip())
    assert usage["completion_tokens"] > -(-len(rest) // 4)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert await redis.xlen(keys.lane("default")) == 0


@pytest.mark.parametrize(
    ("model", "begin", "why"),
    [
        ("plain", {}, "openai: its API cannot continue a partial answer"),
        ("claude-fixed", {}, "stream_continuation is off for its deployment"),
        ("claude", {"tool_call": True}, "it was calling a tool"),
    ],
)
async def test_a_stream_that_cannot_continue_ends_with_worker_lost(
    fake: FakeUpstream,
    namespace: str,
    redis: Redis,
    model: str,
    begin: dict[str, Any],
    why: str,
) -> None:
    config = config_for(fake, namespace)
    keys = Keys(namespace)
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        response = await stream_begun_by(Ghost(redis, keys), http, door.url, model, **begin)
        worker = await start_worker(config)
        try:
            events = await asyncio.wait_for(read_sse(response), 20)
        finally:
            await worker.stop()
    error = json.loads(events[-1][1])["error"]
    assert error["code"] == "worker_lost"
    assert why in error["message"]
    assert text_of(events[:-1]) == "".join(SENT)  # a clean prefix, then the error
    assert fake.request_count == 0
    assert await redis.xlen(keys.lane("default")) == 0


async def test_continuation_off_for_the_service_ends_every_cut_stream(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = config_for(fake, namespace, stream_continuation="false")
    keys = Keys(namespace)
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        response = await stream_begun_by(Ghost(redis, keys), http, door.url, "claude")
        worker = await start_worker(config)
        try:
            events = await asyncio.wait_for(read_sse(response), 20)
        finally:
            await worker.stop()
    assert json.loads(events[-1][1])["error"]["code"] == "worker_lost"
    assert fake.request_count == 0


async def test_a_silent_workers_entries_are_taken_after_the_grace_not_before(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    """A worker that beat and then went silent keeps its entries for the grace, then loses
    them by consumer; the time from its last beat is measured."""
    config = config_for(fake, namespace, takeover_grace_s=1.5)
    keys = Keys(namespace)
    ghost = Ghost(redis, keys)
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        await ghost.beat()
        posted = asyncio.create_task(
            http.post(
                door.url + "/v1/chat/completions", json={"model": "gpt-test", "messages": HELLO}
            )
        )

        async def queued() -> bool:
            return int(await redis.xlen(keys.lane("default"))) == 1

        await wait_until(queued)
        await redis_streams.read_requests(redis, keys, ghost.name, ["default"], 1, None)
        running = await start_worker(config)
        try:
            response = await asyncio.wait_for(posted, 20)
            assert response.status == 200
            assert response.headers["x-switchboard-takeovers"] == "1"
            assert response.headers["x-switchboard-attempts"] == "2"
            # Taken after the grace from its last beat, by Redis's clock, and long before
            # claim_idle_ms (60 s) would have.
            (delay,) = running.worker.metrics.takeover_delay.collect()
            observed = {sample.name: sample.value for sample in delay.samples}
            assert observed["switchboard_worker_takeover_delay_seconds_count"] == 1
            assert 1.5 <= observed["switchboard_worker_takeover_delay_seconds_sum"] < 30
        finally:
            await running.stop()
    assert fake.request_count == 1
    consumers: Any = await redis.xinfo_consumers(keys.lane("default"), redis_streams.GROUP)
    assert ghost.name not in {c["name"].decode() for c in consumers}  # left the group


LONG = """\
- model_name: long
  litellm_params:
    model: anthropic/claude-haiku-4-5~chunks=30~chunk_delay=0.1
    api_base: {base}
    api_key: sk-ant-fake
"""


def long_config(fake: FakeUpstream, namespace: str) -> Any:
    # A grace of 0.5 s, a sixth of the stream's 3 s.
    settings = {**SETTINGS, "takeover_grace_s": 0.5}
    models = MODELS.format(base=fake.base_url) + LONG.format(base=fake.base_url)
    return make_config(fake.base_url + "/v1", namespace, settings=settings, extra_models=models)


async def test_a_slow_live_worker_is_never_robbed(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = long_config(fake, namespace)
    lane = Keys(namespace).lane("default")
    body = {"model": "long", "messages": HELLO, "stream": True}
    owners: set[str] = set()
    deliveries: set[int] = set()
    async with service(config, workers=2) as ([door], running), aiohttp.ClientSession() as http:
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            while batch := await read_sse(response, limit=1):
                if batch[0][1] == "[DONE]":
                    break
                for row in await redis.xpending_range(lane, redis_streams.GROUP, "-", "+", 10):
                    owners.add(row["consumer"].decode())
                    deliveries.add(int(row["times_delivered"]))
        taken = [w.worker.metrics.taken_over.labels("default")._value.get() for w in running]
    assert len(owners) == 1 and deliveries == {1}
    assert taken == [0, 0]
    assert fake.request_count == 1


async def test_a_worker_presumed_dead_stops_and_its_stream_goes_on_once(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    """A worker whose entry another took over (as if it had been paused past the grace)
    stops its job quietly when its renewal finds the entry gone; the taker (here a ghost
    that then dies too, so the first worker takes the stream back) continues it once."""
    config = long_config(fake, namespace)
    keys = Keys(namespace)
    thief = Ghost(redis, keys, "thief")
    async with service(config, workers=1) as ([door], [running]), aiohttp.ClientSession() as http:
        worker = running.worker
        body = {"model": "long", "messages": HELLO, "stream": True}
        response = await http.post(door.url + "/v1/chat/completions", json=body)
        first = await read_sse(response, limit=3)
        await thief.beat()
        taken = await redis_streams.take_over(redis, keys, "default", worker.worker_id, "thief", 10)
        assert len(taken.entries) == 1
        worker.claims.renew_now()

        async def stopped() -> bool:
            return not worker.jobs

        await wait_until(stopped)
        rest = await asyncio.wait_for(read_sse(response), 20)
        response.close()
    events = first + rest
    assert [int(i or 0) for i, _ in events] == list(range(1, len(events) + 1))
    assert events[-1][1] == "[DONE]"
    assert text_of(events) == "This is a fake reply from claude-haiku-4-5."
    assert worker.metrics.taken_over.labels("default")._value.get() == 1
    assert fake.request_count == 2  # the first call, and the continuation; no third
