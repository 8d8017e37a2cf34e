"""The request flow through a real Redis: front door -> request stream -> worker ->
reply stream -> front door, with the Redis bookkeeping each step promises."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import aiohttp
from redis.asyncio import Redis

from tests.broker.harness import make_config, post, read_sse, service
from tests.conftest import RoundTrips
from tests.waiting import eventually
from workers import redis_streams
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]
QUICK_504 = {"model": "gpt-test", "messages": HELLO, "timeout": 0.05}


async def test_non_stream_answer_carries_gateway_headers(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        status, body, response = await post(
            http, door.url, {"model": "gpt-test", "messages": HELLO}
        )
    assert status == 200
    assert body["choices"][0]["message"]["content"] == "This is a fake reply from gpt-4o-mini."
    headers = response.headers
    assert headers["x-request-id"].startswith("req_")
    assert headers["x-switchboard-deployment"] == "gpt-test[0]"
    assert headers["x-switchboard-attempts"] == "1"
    assert float(headers["x-switchboard-overhead-ms"]) >= 0
    assert float(headers["x-switchboard-cost-usd"]) > 0
    # The worker sent the deployment's model, not the group name.
    assert fake.requests[-1].json["model"] == "gpt-4o-mini"


async def test_stream_events_carry_ids_and_end_with_done(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    body = {
        "model": "gpt-test",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = await read_sse(response)
    ids = [int(event_id) for event_id, _ in events if event_id is not None]
    assert ids == list(range(1, len(events) + 1))
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "This is a fake reply from gpt-4o-mini."


async def test_stream_without_include_usage_has_no_usage_chunk(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    body = {"model": "gpt-test", "messages": HELLO, "stream": True}
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            events = await read_sse(response)
    assert all(json.loads(data)["choices"] for _, data in events[:-1])


async def test_entry_is_acked_and_deleted_after_the_final_reply(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(fake.base_url + "/v1", namespace, settings={"reply_ttl_s": 120})
    keys = Keys(namespace)
    lane = keys.lane("default")
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        task = asyncio.create_task(post(http, door.url, {"model": "slow", "messages": HELLO}))
        await fake.wait_for_requests(1)
        # In flight: the entry still exists and is pending with the worker.
        assert await redis.xlen(lane) == 1
        assert (await redis.xpending(lane, redis_streams.GROUP))["pending"] == 1
        status, _body, response = await task
    assert status == 200
    assert await redis.xlen(lane) == 0
    assert (await redis.xpending(lane, redis_streams.GROUP))["pending"] == 0
    reply = keys.reply(response.headers["x-request-id"])
    ttl = await redis.ttl(reply)
    assert 0 < ttl <= 120


async def test_keys_share_a_cluster_slot_per_request() -> None:
    keys = Keys("sb")
    assert keys.reply("req_1") == "sb:{req_1}:reply"
    assert keys.state("req_1") == "sb:{req_1}:state"
    assert (
        keys.lane("a").split("{")[1].split("}")[0] == keys.dead_letter.split("{")[1].split("}")[0]
    )


async def test_embeddings_and_models_and_health(fake: FakeUpstream, namespace: str) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        async with http.post(
            door.url + "/v1/embeddings", json={"model": "embed-test", "input": ["a", "b"]}
        ) as response:
            assert response.status == 200
            body = await response.json()
        assert len(body["data"]) == 2 and body["object"] == "list"
        async with http.get(door.url + "/v1/models") as response:
            models = await response.json()
        assert {m["id"] for m in models["data"]} == {"gpt-test", "slow", "groq-test", "embed-test"}
        async with http.get(door.url + "/health/liveliness") as response:
            assert response.status == 200
        readiness: tuple[int, object] = (0, None)

        async def ready() -> bool:
            nonlocal readiness
            async with http.get(door.url + "/health/readiness") as response:
                readiness = (response.status, await response.json())
            return readiness[0] == 200

        await eventually(ready, what="readiness")
        assert readiness == (
            200,
            {"draining": False, "redis": "ok", "live_workers": 1, "status": "ready"},
        )


async def test_metrics_export_requests_latency_queue_and_workers(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        await post(http, door.url, {"model": "gpt-test", "messages": HELLO})
        body = {"model": "gpt-test", "messages": HELLO, "stream": True}
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            await read_sse(response)
        await door.front.monitor.refresh()
        async with http.get(door.url + "/metrics") as response:
            text = await response.text()
    requests = 'switchboard_requests_total{deployment="gpt-test[0]",model_group="gpt-test"'
    assert requests + ',status="200"} 2.0' in text
    served = 'deployment="gpt-test[0]",model_group="gpt-test"'
    assert "switchboard_request_duration_seconds_count{" + served + "} 2.0" in text
    assert "switchboard_time_to_first_token_seconds_count{" + served + "} 1.0" in text
    assert 'switchboard_queue_depth{lane="default"} 0.0' in text
    assert 'switchboard_queue_pending{lane="default"}' in text
    assert "switchboard_live_workers 1.0" in text
    assert "switchboard_workers_in_flight_requests" in text
    assert "switchboard_worker_heartbeat_age_seconds" in text


async def test_a_provider_error_before_streaming_is_an_http_error(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        extra_models="""\
        - model_name: limited
          litellm_params:
            model: openai/gpt-4o-mini~status=429~retry_after=7
            api_base: {base}
            api_key: sk-fake
        """.replace("{base}", fake.base_url + "/v1"),
    )
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        for stream in (False, True):
            status, body, response = await post(
                http, door.url, {"model": "limited", "messages": HELLO, "stream": stream}
            )
            assert status == 429
            assert body["error"]["type"] == "rate_limit_error"
            assert response.headers["x-request-id"]


async def test_a_stream_costs_one_round_trip_per_record(
    fake: FakeUpstream, namespace: str, redis: Redis, round_trips: RoundTrips
) -> None:
    """docs/architecture.md's count: a worker writes each record (reply XADD, EXPIRE,
    PUBLISH; with the last, the ack) in one round trip, and the front door reads none;
    per request add the enqueue and the routing admission. Front door and worker share
    this process, so every pipeline either sends is counted; the monitor's and the
    heartbeats' timed ones are the allowance."""
    extra = (
        "- model_name: chunky\n"
        "  litellm_params:\n"
        "    model: openai/gpt-4o-mini~chunks=20~chunk_delay=0.02\n"
        f"    api_base: {fake.base_url}/v1\n"
        "    api_key: sk-fake\n"
    )
    config = make_config(fake.base_url + "/v1", namespace, extra_models=extra)
    body = {"model": "chunky", "messages": HELLO, "stream": True}
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        before, started = round_trips.count, time.monotonic()
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            request_id = response.headers["x-request-id"]
            events = await read_sse(response)
        # Counted before the service stops: its goodbye (forget the worker, drop its
        # consumer) is not the request's.
        spent, elapsed = round_trips.count - before, time.monotonic() - started
    records = int(await redis.xlen(Keys(namespace).reply(request_id)))
    assert records >= 20 and len(events) >= records  # one upstream read per chunk here
    # Six timed pipelines may run every 0.25 s: the heartbeat, the claims' keep-alive, the
    # monitor's three reads (queue depths, worker load, routing figures) and the watch for
    # dead workers; claim renewals are rarer still: each may have started once more. A
    # second round trip per record would still exceed this for 20+ records.
    timed = 6 * math.ceil(elapsed / 0.25) + 6
    assert spent <= records + 2 + timed, (spent, records, elapsed)


async def test_priority_and_the_lane_header_pick_the_lane(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    """LiteLLM's `priority` (lower is more urgent) indexes the lanes, listed most urgent
    first, and is clamped to them; `x-switchboard-lane` names one; an unknown one is a 400."""
    config = make_config(
        fake.base_url + "/v1", namespace, settings={"lanes": "[urgent, default, batch]"}
    )
    keys = Keys(namespace)
    cases: list[tuple[dict[str, Any], dict[str, str], str]]
    cases = [({"priority": 0}, {}, "urgent"), ({"priority": 1}, {}, "default")]
    cases += [({"priority": 9}, {}, "batch"), ({}, {}, "urgent")]
    cases += [({}, {"x-switchboard-lane": "batch"}, "batch")]
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        # Nobody serves them: each ends in a 504, and its entry stays in its lane.
        await asyncio.gather(
            *(
                post(http, door.url, {**QUICK_504, **options}, headers=h)
                for options, h, _lane in cases
            )
        )
        depths = {
            lane: int(await redis.xlen(keys.lane(lane))) for lane in ("urgent", "default", "batch")
        }
        status, error, _ = await post(
            http,
            door.url,
            {"model": "gpt-test", "messages": HELLO},
            headers={"x-switchboard-lane": "nope"},
        )
    assert depths == {"urgent": 2, "default": 1, "batch": 2}
    assert status == 400 and error["error"]["param"] == "x-switchboard-lane"
