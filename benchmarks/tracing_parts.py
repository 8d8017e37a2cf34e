"""What tracing costs per request, part by part (issue #19), without the noise of a whole
service on a shared machine: each step a traced request adds, timed alone, in process CPU.

    python -m benchmarks.tracing_parts

- front door: the span context of a request (ids, the traceparent, its start);
- worker: the provider call's span id and the FinishedCall's msgpack encoding (the bytes the
  final record's round trip carries);
- front door: the relay's record (workers/hooks/front_spans.py), kept after the answer's
  last byte, and its share of the entry that carries a batch of them onto the stream;
- consumer: decoding the event and making its three spans (`ReadableSpan`s), then decoding
  the relay's record and making its span;
- OTLP encoding: the OpenTelemetry exporter's protobuf encoding of a request's four spans,
  in a batch of 100 requests, as the consumer hands them over.

The OTLP POST itself (one per batch of up to `batch_size` requests) and Redis's work are
not in these figures; benchmarks/hooks.py measures the whole, side by side with tracing off.
"""

from __future__ import annotations

import asyncio
import time
import timeit
from collections.abc import Callable

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from benchmarks.realistic import OtlpSink
from benchmarks.run import free_port
from workers import envelopes
from workers.envelopes import Envelope, Meta, Record
from workers.hooks.front_spans import FrontDoorTracing
from workers.hooks.service import ServiceHooks
from workers.hooks.tracing import call_spans, front_span, otlp_exporter, span_exports
from workers.settings.hooks import CallbackSettings, OtelCallback
from workers.tenancy import events

BATCH = 100


def parts(sink_url: str) -> list[tuple[str, float]]:
    otel = OtelCallback()
    front = FrontDoorTracing(otel)
    trace = front.start(None)
    envelope = Envelope(
        request_id="req-1",
        kind=envelopes.KIND_CHAT,
        model_group="gpt-test",
        stream=False,
        deadline_ms=0,
        enqueued_ms=int(time.time() * 1000),
        reply_to="front",
        lane="default",
        body=b'{"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}',
        traceparent=trace.traceparent,
        trace_start_ns=trace.start_ns,
    )
    meta = Meta(deployment="gpt-test[0]", provider="openai", prompt_tokens=5, cost_usd=0.001)
    record = Record(seq=1, end=envelopes.RESPONSE, body=b'{"id": "x"}', meta=meta)
    hooks = ServiceHooks.from_config(
        success_callback=[],
        failure_callback=[],
        callbacks=["otel"],
        turn_off_message_logging=False,
        settings=CallbackSettings(otel=otel),
    )
    assert hooks is not None
    resource = span_exports(otel, None)["otel"].resource

    def worker() -> bytes:
        hooks.job_started(envelope, envelope.enqueued_ms)
        return hooks.finished_call(envelope, envelope.enqueued_ms, record)

    raw = worker()

    def consumer() -> None:
        call_spans("req-1", events.decode_call(raw), resource)

    def relay() -> None:
        trace.queued()
        trace.first_byte_ns = time.time_ns()
        trace.relayed(200)
        front.relayed(trace, 1234, time.time_ns())
        if len(front.pending) >= BATCH:  # a flush's encoding, its share a request
            events.encode(list(front.pending))
            front.pending.clear()

    relay()
    packed = events.encode(list(front.pending))
    front.pending.clear()

    def relay_made() -> ReadableSpan:
        [record] = events.decode_front_spans(packed)
        return front_span(record, resource)

    spans = [*call_spans("req-1", events.decode_call(raw), resource), relay_made()] * BATCH

    def otlp() -> None:
        encode_spans(spans).SerializePartialToString()

    exporter = otlp_exporter(sink_url, {})

    def export() -> None:
        exporter.export(spans)

    steps: list[tuple[str, Callable[[], object], int]] = [
        ("front door: span context", lambda: front.start(None), 1),
        ("front door: relay's record kept, and packed", relay, 1),
        ("worker: span id + event encoding", worker, 1),
        ("consumer: event decoded, 3 spans made", consumer, 1),
        ("consumer: relay record decoded, its span made", relay_made, 1),
        ("OTLP protobuf encoding of 4 spans", otlp, BATCH),
        ("OTLP/HTTP export of 4 spans (the encoding again, and the POST)", export, BATCH),
    ]
    results = []
    for name, step, per in steps:
        number = max(5, 20_000 // per)
        best = min(timeit.repeat(step, number=number, repeat=5, timer=time.process_time))
        results.append((name, best / number / per * 1e6))
    return results


async def timed_beside_a_sink() -> list[tuple[str, float]]:
    """The parts, with a local OTLP/HTTP receiver in a process of its own to POST to."""
    async with OtlpSink(free_port()) as sink:
        return await asyncio.to_thread(parts, sink.url)


def main() -> None:
    results = asyncio.run(timed_beside_a_sink())
    print("| part | CPU per request (µs) |")
    print("|---|---|")
    for name, us in results:
        print(f"| {name} | {us:.1f} |")
    print(
        f"| total (the export row counts the encoding twice) | {sum(us for _, us in results):.1f} |"
    )


if __name__ == "__main__":
    main()
