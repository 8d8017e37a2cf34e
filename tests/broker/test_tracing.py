"""One trace per request across front door, queue, worker and provider, exported by the
OpenTelemetry SDK over OTLP/HTTP to a receiver that decodes it with opentelemetry-proto."""

from __future__ import annotations

import asyncio
import base64
import textwrap
from typing import Any

import aiohttp

from broker.hooks import FRONT_HOOKS
from tests.broker.harness import make_config, post, service
from tests.broker.otlp_receiver import OtlpReceiver
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "trace me"}]
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_PARENT = "b7ad6b7169203331"


FAILING = """\
- model_name: failing
  litellm_params:
    model: openai/gpt-4o-mini~status=500
    api_base: {base}
    api_key: sk-fake
"""


def _config(
    fake: FakeUpstream, namespace: str, receiver: OtlpReceiver, otel_extra: str = ""
) -> Any:
    general = textwrap.dedent(
        f"""\
        litellm_settings:
          callbacks: ["otel"]
          fallbacks: [{{failing: [gpt-test]}}]
        callback_settings:
          otel:
            endpoint: {receiver.url}
            headers: {{x-collector-token: sekrit}}
            service_name: sb-test
            {otel_extra}
        """
    )
    base = fake.base_url + "/v1"
    return make_config(base, namespace, general=general, extra_models=FAILING.format(base=base))


async def test_one_trace_runs_from_the_client_through_the_queue_to_the_upstream(
    fake: FakeUpstream, namespace: str
) -> None:
    async with OtlpReceiver() as receiver:
        config = _config(fake, namespace, receiver)
        async with service(config) as ([door], _), aiohttp.ClientSession() as http:
            status, _, response = await post(
                http,
                door.url,
                {"model": "gpt-test", "messages": HELLO},
                headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"},
            )
            assert status == 200
            request_id = response.headers["x-request-id"]
        # Leaving the service flushed both processes' batches.
        spans = {span.name: span for span in receiver.spans}
    # A request served at once: four spans, no attempt of its own.
    assert set(spans) == {
        "POST /v1/chat/completions",
        "switchboard.queue",
        "chat gpt-test",
        "switchboard.relay",
    }
    front = spans["POST /v1/chat/completions"]
    queue, call = spans["switchboard.queue"], spans["chat gpt-test"]
    relay = spans["switchboard.relay"]
    # One trace, the client's, and each span under the right parent.
    assert {s.trace_id for s in spans.values()} == {CLIENT_TRACE}
    assert front.parent_id == CLIENT_PARENT
    assert queue.parent_id == front.span_id and call.parent_id == front.span_id
    # The relay of the answer: from the enqueue to the last byte, after the worker's call.
    assert relay.parent_id == front.span_id
    assert relay.start_ns <= call.start_ns + 1_000_000 and relay.end_ns >= call.end_ns
    assert relay.attributes["switchboard.relay.outcome"] == "ok"
    assert "http.response.status_code" not in relay.attributes  # 200, the usual: left out
    assert relay.attributes["switchboard.relay.bytes"] > int(response.headers["Content-Length"])
    ttfb_ms = relay.attributes["switchboard.relay.ttfb_ms"]
    assert 0 < ttfb_ms <= (relay.end_ns - front.start_ns) / 1e6
    # Queue wait ends where the worker's span starts.
    assert queue.end_ns <= call.start_ns + 1_000_000
    # GenAI semantic conventions on the provider call.
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.request.model"] == "gpt-test"
    assert call.attributes["gen_ai.usage.input_tokens"] > 0
    assert call.attributes["gen_ai.usage.output_tokens"] > 0
    assert call.attributes["gen_ai.provider.name"] == "openai"
    assert call.attributes["switchboard.request_id"] == request_id
    assert front.service == "sb-test"
    assert front.attributes["http.response.status_code"] == 200
    # The upstream got the provider call's context.
    upstream = fake.requests[-1].headers["traceparent"]
    assert upstream == f"00-{CLIENT_TRACE}-{call.span_id}-01"
    assert all(h.get("x-collector-token") == "sekrit" for h in receiver.headers)


async def test_a_request_without_traceparent_starts_a_trace_and_a_bad_one_is_ignored(
    fake: FakeUpstream, namespace: str
) -> None:
    async with OtlpReceiver() as receiver:
        config = _config(fake, namespace, receiver)
        async with service(config) as ([door], _), aiohttp.ClientSession() as http:
            for headers in ({}, {"traceparent": "00-" + "0" * 32 + "-" + "1" * 16 + "-01"}):
                status, _, _ = await post(
                    http, door.url, {"model": "gpt-test", "messages": HELLO}, headers=headers
                )
                assert status == 200
    fronts = [s for s in receiver.spans if s.name == "POST /v1/chat/completions"]
    assert len(fronts) == 2 and all(s.parent_id == "" for s in fronts)
    upstream = [r.headers["traceparent"] for r in fake.requests]
    assert [t.split("-")[1] for t in upstream] == [s.trace_id for s in fronts]


async def test_without_tracing_nothing_is_sent_upstream(fake: FakeUpstream, namespace: str) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    async with service(config) as ([door], _), aiohttp.ClientSession() as http:
        status, _, _ = await post(
            http,
            door.url,
            {"model": "gpt-test", "messages": HELLO},
            headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"},
        )
    assert status == 200
    assert "traceparent" not in fake.requests[-1].headers


async def test_a_fallback_shows_each_attempt_under_the_provider_call(
    fake: FakeUpstream, namespace: str
) -> None:
    async with OtlpReceiver() as receiver:
        config = _config(fake, namespace, receiver)
        async with service(config) as ([door], _), aiohttp.ClientSession() as http:
            status, _, _ = await post(http, door.url, {"model": "failing", "messages": HELLO})
            assert status == 200
    spans = {span.name: span for span in receiver.spans}
    call = spans["chat failing"]
    failed, served = spans["attempt failing[0]"], spans["attempt gpt-test[0]"]
    assert failed.parent_id == call.span_id and served.parent_id == call.span_id
    assert failed.attributes["error.type"] and "error.type" not in served.attributes
    assert failed.end_ns <= served.start_ns
    assert call.attributes["switchboard.fallbacks"] == 1
    # The first attempt carried the call's context (it had no span yet), the next its own.
    sent = [r.headers["traceparent"].split("-")[2] for r in fake.requests]
    assert sent == [call.span_id, served.span_id]


async def test_a_collector_outage_under_load_loses_no_span_and_repeats_none(
    fake: FakeUpstream, namespace: str
) -> None:
    async with OtlpReceiver() as receiver:
        config = _config(fake, namespace, receiver, "export_interval_s: 0.1")
        receiver.is_down = True
        async with service(config) as ([door], _), aiohttp.ClientSession() as http:
            for _ in range(10):
                status, _, _ = await post(http, door.url, {"model": "gpt-test", "messages": HELLO})
                assert status == 200
            # The exporters tried, and were refused, a few times: the collector was down.
            await eventually(lambda: receiver.refused >= 3, what="refused exports", timeout_s=20)
            receiver.is_down = False
        spans = receiver.spans
    # Every request's four spans (front door, queue, provider call, relay), each once.
    assert len({span.span_id for span in spans}) == len(spans) == 40
    assert len({span.trace_id for span in spans}) == 10


async def test_langfuse_gets_the_spans_with_its_basic_auth(
    fake: FakeUpstream, namespace: str
) -> None:
    async with OtlpReceiver() as receiver:
        general = textwrap.dedent(
            f"""\
            litellm_settings:
              success_callback: ["langfuse"]
            callback_settings:
              langfuse: {{host: "{receiver.base_url}", public_key: pk-lf-1, secret_key: sk-lf-2}}
            """
        )
        config = make_config(fake.base_url + "/v1", namespace, general=general)
        async with service(config) as ([door], _), aiohttp.ClientSession() as http:
            status, _, _ = await post(http, door.url, {"model": "gpt-test", "messages": HELLO})
            assert status == 200
    assert {s.name for s in receiver.spans} >= {"POST /v1/chat/completions", "chat gpt-test"}
    token = base64.b64encode(b"pk-lf-1:sk-lf-2").decode()
    assert {h["Authorization"] for h in receiver.headers} == {f"Basic {token}"}


async def test_a_request_the_front_door_answers_itself_has_its_span_from_there(
    fake: FakeUpstream, namespace: str
) -> None:
    async with OtlpReceiver() as receiver:
        config = _config(fake, namespace, receiver, "export_interval_s: 0.1")
        async with service(config) as ([door], _), aiohttp.ClientSession() as http:
            status, _, _ = await post(
                http,
                door.url,
                {"model": "gpt-test", "messages": "not a list"},
                headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"},
            )
            assert status == 400
    # No worker saw it: one span, the front door's, made and exported there.
    [span] = receiver.spans
    assert span.name == "POST /v1/chat/completions" and span.trace_id == CLIENT_TRACE
    assert span.parent_id == CLIENT_PARENT
    assert span.attributes["http.response.status_code"] == 400
    assert fake.requests == []


async def test_a_streams_relay_span_times_its_first_byte_and_counts_its_bytes(
    fake: FakeUpstream, namespace: str
) -> None:
    async with OtlpReceiver() as receiver:
        config = _config(fake, namespace, receiver)
        async with service(config) as ([door], _), aiohttp.ClientSession() as http:
            body = {"model": "slow", "messages": HELLO, "stream": True}
            async with http.post(door.url + "/v1/chat/completions", json=body) as streamed:
                assert streamed.status == 200
                received = len(await streamed.read())
            # A client that leaves mid-stream: the relay says so.
            async with http.post(door.url + "/v1/chat/completions", json=body) as left:
                await left.content.readany()
            await asyncio.sleep(0.3)  # the front door notices the closed connection
        spans = receiver.spans
    relays = [s for s in spans if s.name == "switchboard.relay"]
    fronts = {s.trace_id: s for s in spans if s.name == "POST /v1/chat/completions"}
    outcomes = sorted(r.attributes["switchboard.relay.outcome"] for r in relays)
    assert outcomes == ["client_closed", "ok"]
    [done] = [r for r in relays if r.attributes["switchboard.relay.outcome"] == "ok"]
    front = fronts[done.trace_id]
    assert done.parent_id == front.span_id
    # The slow model streams 20 chunks 50 ms apart: the first byte comes well before the end.
    ttfb_ns = done.attributes["switchboard.relay.ttfb_ms"] * 1e6
    assert front.start_ns + ttfb_ns < done.end_ns - 500_000_000
    assert done.attributes["switchboard.relay.bytes"] > received


async def test_an_unsampled_request_builds_nothing_for_its_trace(
    fake: FakeUpstream, namespace: str
) -> None:
    """Sampling is decided first: with span exports alone, an unsampled request has no
    finished-request event, no span made anywhere; its context still goes upstream."""
    async with OtlpReceiver() as receiver:
        config = _config(fake, namespace, receiver, "sample_rate: 0.0")
        async with service(config) as ([door], workers), aiohttp.ClientSession() as http:
            status, _, _ = await post(http, door.url, {"model": "gpt-test", "messages": HELLO})
            assert status == 200
            bad = {"model": "gpt-test", "messages": "not a list"}
            assert (await post(http, door.url, bad))[0] == 400
            await door.app[FRONT_HOOKS].dispatcher.flush()
            [consumer] = [running.worker.callback_consumer for running in workers]
            assert consumer is not None
            await consumer.flush()
            assert consumer.offered == 0  # no event reached the callbacks' stream
    assert receiver.spans == []
    assert fake.requests[-1].headers["traceparent"].endswith("-00")
