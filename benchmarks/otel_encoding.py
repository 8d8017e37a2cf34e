"""The floor under tracing's cost (issue #19): what the OpenTelemetry SDK's OTLP encoder
alone takes for one request's spans, timed in this process on nothing else.

A traced request has four spans (the front door's server span, the queue wait, the
provider call, the relay; workers/hooks/tracing.py), and the issue has them encoded by the
official SDK's OTLP exporter ("do not hand-write OTLP encoding or batching"). Whatever
process does it, those microseconds are CPU the request costs: divided by a request's CPU
without tracing (benchmarks.otel_cost prints both), it is the least that tracing every
request can add.

    python -m benchmarks.otel_encoding            # µs a request: making the spans, encoding
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from workers import envelopes
from workers.tenancy.events import CallTrace, FinishedCall, FrontSpan

BATCH = 200  # callback_settings.batch_size's default: one export's events
_START_NS = 1_765_000_000_000_000_000


@dataclass(frozen=True)
class EncodingCost:
    spans_each: float  # spans a request
    make_us: float  # making one request's ReadableSpans from its event and record
    encode_us: float  # the exporter's encoding of them, to the bytes it POSTs

    @property
    def total_us(self) -> float:
        return self.make_us + self.encode_us


def requests(count: int) -> list[tuple[str, FinishedCall, FrontSpan]]:
    """`count` requests as the consumer reads them: a worker's event (a chat answer, one
    attempt) and the front door's relay record."""
    found = []
    start_ms = _START_NS // 1_000_000
    for i in range(count):
        traceparent = f"00-{i + 1:032x}-{i + 1:016x}-01"
        call = FinishedCall(
            kind=envelopes.KIND_CHAT,
            ingress=0,
            model_group="gpt-4o",
            stream=False,
            lane="default",
            enqueued_ms=start_ms + 1,
            started_ms=start_ms + 2,
            ended_ms=start_ms + 40,
            end=envelopes.RESPONSE,
            meta=envelopes.Meta(
                provider="openai",
                deployment="gpt-4o-2024-08-06",
                prompt_tokens=12,
                completion_tokens=48,
                cost_usd=0.00051,
            ),
            trace=CallTrace(
                traceparent=traceparent, front_start_ns=_START_NS, call_span=f"{i + 7:016x}"
            ),
        )
        relay = FrontSpan(
            traceparent=traceparent,
            start_ns=_START_NS + 1_000_000,
            end_ns=_START_NS + 41_000_000,
            status=200,
            span_id=f"{i + 5:016x}",
            sent_bytes=612,
            ttfb_ns=39_000_000,
        )
        found.append((f"req-{i}", call, relay))
    return found


def measure(batches: int = 10, repeats: int = 5) -> EncodingCost:
    """The least of `repeats` timings of `batches` exports of BATCH requests each."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from workers.hooks import tracing

    resource = tracing.process_resource("switchboard")
    todo = requests(BATCH * batches)
    make_s = encode_s = float("inf")
    spans_each = 0.0
    for _ in range(repeats):
        began = time.perf_counter()
        made = []
        for request_id, call, relay in todo:
            spans = tracing.call_spans(request_id, call, resource)
            spans.append(tracing.front_span(relay, resource))
            made.append(spans)
        made_at = time.perf_counter()
        for b in range(batches):
            batch = [span for spans in made[b * BATCH : (b + 1) * BATCH] for span in spans]
            encode_spans(batch).SerializePartialToString()
        encoded_at = time.perf_counter()
        make_s = min(make_s, made_at - began)
        encode_s = min(encode_s, encoded_at - made_at)
        spans_each = sum(len(spans) for spans in made) / len(made)
    count = len(todo)
    return EncodingCost(spans_each, make_s / count * 1e6, encode_s / count * 1e6)


def report(cost: EncodingCost) -> list[str]:
    return [
        f"The OpenTelemetry SDK, one request's {cost.spans_each:g} spans, timed alone: "
        f"{cost.make_us:.0f} µs making them, {cost.encode_us:.0f} µs encoding them "
        f"({cost.encode_us / cost.spans_each:.0f} µs a span), {cost.total_us:.0f} µs in all."
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args(argv)
    print("\n".join(report(measure(args.batches))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
