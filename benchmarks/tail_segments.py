"""Where the slow requests' time goes: issue #22's c=1 tail with everything on, by segment.

    python -m benchmarks.tail_segments --duration 20

Starts what `benchmarks.run` starts for its everything-on target (the fake upstream and this
client on CPU 0, Switchboard 1 + 1 with `benchmarks.realistic.everything_on` on CPU 1, the
OTLP sink beside the client), runs non-stream load at c=1 with a W3C `traceparent` of the
client's own on every request, and has the sink keep every span (`otlp_sink --dump`). Each
request's client-side times are joined with its spans by trace id and cut into segments:

    client -> front door   the client's send to the front door's start (socket, accept, read)
    admit + enqueue        the front door's start to the enqueue's return (auth, admission)
    queue wait             the enqueue to the worker's start (the worker's wake-up)
    worker                 the worker's start to its end (provider call, final record)
    record -> relay end    the worker's end to the relay's last byte (front door's wake-up)
    relay end -> client    the last byte to the client's read of it

The worker's times are in milliseconds (`started_ms`, `ended_ms`), so the segments on each
side of them carry up to 1 ms of rounding each way; the rest are nanoseconds. The table
compares the median requests with the slowest 1% and 2%, and lists the slowest requests with
the span exports (the callbacks consumers' and the front door's) nearest to them in time.

With `--probe` each gateway process also notes when it did its background work
(benchmarks/tail_probe/sitecustomize.py: the ledger's batches, every span export, cycle
collections), and a last table puts each group's requests down to what ran beside them.
`--report-only` prints the tables again from what a run left in `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import gateways, realistic, run
from benchmarks.loadgen import Client, _Connection, build_request
from benchmarks.otlp_sink import read_dump
from benchmarks.procs import wait_http_ready

SEGMENTS = (
    "client -> front door",
    "admit + enqueue",
    "queue wait",
    "worker",
    "record -> relay end",
    "relay end -> client",
)
_NS_PER_MS = 1_000_000
# Put on the gateway's PYTHONPATH with --probe: its sitecustomize notes background work.
PROBE = Path(__file__).resolve().parent / "tail_probe"
# An export is encoded (protobuf, in the exporting process) just before it arrives: one that
# arrives from a request's start to this long after its end may have run beside it.
EXPORT_REACH_NS = 20 * _NS_PER_MS


@dataclass
class Sent:
    """One request as the client saw it (wall-clock ns, the clock the spans use)."""

    trace_id: str
    start_ns: int
    end_ns: int = 0
    ok: bool = False


class TracedClient(Client):
    """The load generator's closed loop, each request with a trace id of its own."""

    def __init__(self, port: int, model: str, api_key: str) -> None:
        super().__init__(port, b"")
        self.model = model
        self.api_key = api_key
        self.sent_requests: list[Sent] = []
        self._current: Sent | None = None

    def _send(self, conn: _Connection) -> None:
        trace_id = os.urandom(16).hex()
        traceparent = f"00-{trace_id}-{os.urandom(8).hex()}-01"
        headers = [("traceparent", traceparent)]
        self.request = build_request(
            self.port, self.model, stream=False, api_key=self.api_key, headers=headers
        )
        self._current = Sent(trace_id, time.time_ns())
        super()._send(conn)

    def finish(self, conn: _Connection, *, ok: bool, error: str | None) -> None:
        current = self._current
        if current is not None and self.is_measuring:
            current.end_ns = time.time_ns()
            current.ok = ok
            self.sent_requests.append(current)
        self._current = None
        super().finish(conn, ok=ok, error=error)


@dataclass
class Spans:
    """One trace's spans, by name, as (start ns, end ns, attributes)."""

    by_name: dict[str, tuple[int, int, dict[str, Any]]]


def decode_spans(dump: Path) -> tuple[dict[str, Spans], list[tuple[int, str, int]]]:
    """Every span the sink kept, by trace id, and each export as (arrived ns, whose, spans):
    "front door" for the relay spans' exports, "callbacks" for a callbacks consumer's (a
    worker's or the batch process's: the sink cannot tell which)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    traces: dict[str, Spans] = {}
    exports = []
    for arrived_ns, body in read_dump(dump):
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        names = set()
        count = 0
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: _value(a.value) for a in span.attributes}
                    trace = traces.setdefault(span.trace_id.hex(), Spans({}))
                    times = (span.start_time_unix_nano, span.end_time_unix_nano, attributes)
                    trace.by_name[span.name] = times
                    names.add(span.name)
                    count += 1
        whose = "front door" if names == {"switchboard.relay"} else "callbacks"
        exports.append((arrived_ns, whose, count))
    return traces, exports


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def segments_ns(sent: Sent, spans: Spans) -> list[int] | None:
    """A request's six segments (see the module's docstring), or None without its spans."""
    names = spans.by_name
    server = names.get("POST /v1/chat/completions")
    queue = names.get("switchboard.queue")
    relay = names.get("switchboard.relay")
    provider = next((v for k, v in names.items() if k.startswith("chat ")), None)
    if server is None or queue is None or relay is None or provider is None:
        return None
    front_start = server[0]
    enqueued = relay[0]  # the relay span starts when the enqueue returned (ns)
    worker_start, worker_end = provider[0], provider[1]
    relay_end = relay[1]
    points = [sent.start_ns, front_start, enqueued, worker_start, worker_end, relay_end]
    points.append(sent.end_ns)
    return [b - a for a, b in zip(points, points[1:], strict=False)]


def _table(
    rows: list[tuple[Sent, list[int]]], exports: list[tuple[int, str, int]]
) -> Iterator[str]:
    by_latency = sorted(rows, key=lambda row: row[0].end_ns - row[0].start_ns)
    n = len(by_latency)
    groups = {
        "median (p45-p55)": by_latency[int(n * 0.45) : int(n * 0.55)],
        "p90-p98": by_latency[int(n * 0.90) : int(n * 0.98)],
        "slowest 2%": by_latency[int(n * 0.98) :],
        "slowest 1%": by_latency[int(n * 0.99) :],
    }
    yield "| segment, mean ms | " + " | ".join(groups) + " |"
    yield "|---|" + "---:|" * len(groups)
    latencies = {
        name: statistics.fmean((s.end_ns - s.start_ns) for s, _ in group) / _NS_PER_MS
        for name, group in groups.items()
    }
    yield "| client latency | " + " | ".join(f"{v:.2f}" for v in latencies.values()) + " |"
    for index, segment in enumerate(SEGMENTS):
        means = [
            statistics.fmean(cut[index] for _, cut in group) / _NS_PER_MS
            for group in groups.values()
        ]
        yield f"| {segment} | " + " | ".join(f"{v:.2f}" for v in means) + " |"
    for whose in ("front door", "callbacks"):
        shares = [
            100 * sum(_beside(sent, exports, whose) for sent, _ in group) / len(group)
            for group in groups.values()
        ]
        yield f"| % beside a {whose} export | " + " | ".join(f"{v:.0f}" for v in shares) + " |"
    yield "| requests | " + " | ".join(str(len(g)) for g in groups.values()) + " |"


def _beside(sent: Sent, exports: list[tuple[int, str, int]], whose: str) -> bool:
    """Whether one of `whose` exports arrived while the request ran or just after."""
    return any(
        sent.start_ns <= at <= sent.end_ns + EXPORT_REACH_NS
        for at, who, _ in exports
        if who == whose
    )


def _slowest(
    rows: list[tuple[Sent, list[int]]], exports: list[tuple[int, str, int]], first_ns: int
) -> Iterator[str]:
    """The slowest requests, each with its largest segment and the exports nearest it."""
    by_latency = sorted(rows, key=lambda row: row[0].end_ns - row[0].start_ns, reverse=True)
    yield "| at s | latency ms | largest segment (ms) | nearest export (ms from start, spans) |"
    yield "|---:|---:|---|---|"
    for sent, cut in by_latency[: max(10, len(rows) // 100)]:
        largest = max(range(len(cut)), key=cut.__getitem__)
        nearest = sorted(exports, key=lambda e: abs(e[0] - sent.start_ns))[:2]
        near = ", ".join(
            f"{whose} {(at - sent.start_ns) / _NS_PER_MS:+.1f} ({spans})"
            for at, whose, spans in nearest
        )
        yield (
            f"| {(sent.start_ns - first_ns) / 1e9:.2f} | "
            f"{(sent.end_ns - sent.start_ns) / _NS_PER_MS:.2f} | "
            f"{SEGMENTS[largest]} ({cut[largest] / _NS_PER_MS:.2f}) | {near} |"
        )


def _probed(folder: Path) -> list[tuple[str, int, int]]:
    """What --probe noted: (name, start ns, end ns), from every process."""
    noted = []
    for path in folder.glob("*.txt"):
        for line in path.read_text().splitlines():
            name, start_ns, end_ns = line.split()
            noted.append((name, int(start_ns), int(end_ns)))
    return noted


# The background work a slow request is put down to, the first that matches: an export of
# the worker's callbacks consumer (with the spans' building before it) or of the front door's
# spans that ran beside it, or a ledger batch that began from shortly before it to its end.
CAUSES = (
    "worker's callbacks export",
    "front door's span records",
    "a ledger batch began",
    "none of these",
)


def _cause(sent: Sent, noted: list[tuple[str, int, int]]) -> str:
    start, end = sent.start_ns, sent.end_ns
    beside = {name for name, a, b in noted if a < end and b > start}
    if "cb-try-worker" in beside:
        return CAUSES[0]
    if "fd-spans" in beside:
        return CAUSES[1]
    reach = EXPORT_REACH_NS // 2
    if any(name == "ledger-write" and start - reach <= a <= end for name, a, _ in noted):
        return CAUSES[2]
    return CAUSES[3]


def _beside_work(
    rows: list[tuple[Sent, list[int]]], noted: list[tuple[str, int, int]]
) -> Iterator[str]:
    """Each group's requests by the background work that ran beside them (--probe)."""
    by_latency = sorted((sent for sent, _ in rows), key=lambda s: s.end_ns - s.start_ns)
    n = len(by_latency)
    groups = {
        "median (p45-p55)": by_latency[int(n * 0.45) : int(n * 0.55)],
        "p90-p98": by_latency[int(n * 0.90) : int(n * 0.98)],
        "slowest 2%": by_latency[int(n * 0.98) :],
        "slowest 1%": by_latency[int(n * 0.99) :],
    }
    yield "| beside, % of requests | " + " | ".join(groups) + " |"
    yield "|---|" + "---:|" * len(groups)
    counted = {name: Counter(_cause(s, noted) for s in group) for name, group in groups.items()}
    for cause in CAUSES:
        shares = [100 * counted[name][cause] / len(group) for name, group in groups.items()]
        yield f"| {cause} | " + " | ".join(f"{v:.0f}" for v in shares) + " |"


async def _sink(port: int, out: Path) -> asyncio.subprocess.Process:
    argv = [sys.executable, "-m", "benchmarks.otlp_sink", "--port", str(port)]
    argv += ["--counts", str(out / "sink-counts"), "--dump", str(out / "spans.bin")]
    (out / "spans.bin").unlink(missing_ok=True)
    process = await asyncio.create_subprocess_exec(*argv)
    for _ in range(200):
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return process
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the OTLP sink did not start")


async def measure(args: argparse.Namespace, plan: dict[str, str | None], upstream: int) -> None:
    out: Path = args.out
    shutil.rmtree(out / "data-on", ignore_errors=True)  # a team from an earlier run
    sink_port = run.free_port()
    sink = await _sink(sink_port, out)
    config = gateways.write_config(out / "config.yaml", f"http://127.0.0.1:{upstream}")
    on = realistic.everything_on(
        config, out / "config-on.yaml", out / "data-on", f"http://127.0.0.1:{sink_port}/v1/traces"
    )
    target = gateways.switchboard(
        run.free_port(),
        on,
        out / "logs",
        front_doors=1,
        workers=1,
        cpus=plan["gateway"],
        suffix=gateways.EVERYTHING_ON,
    )
    assert target.service is not None and target.service.env is not None
    if args.probe:
        shutil.rmtree(out / "probe", ignore_errors=True)
        (out / "probe").mkdir()
        target.service.env["PYTHONPATH"] = str(PROBE)
        target.service.env["TAIL_PROBE_DIR"] = str(out / "probe")
    target.service.start()
    try:
        await wait_http_ready(target.port, target.ready_path, 60, target.service)
        key = await realistic.database_key(target.port)
        client = TracedClient(target.port, target.model, key)
        conns = await client.open(1)
        client.start(conns)
        await asyncio.sleep(args.warmup)
        client.is_measuring = True
        await asyncio.sleep(args.duration)
        client.is_measuring = False
        await client.stop(conns, 5)
        await asyncio.sleep(2)  # the last batches' exports
    finally:
        target.service.stop()  # flushes what the front door still holds
        sink.terminate()
        await sink.wait()
    sent = client.sent_requests
    lines = (f"{r.trace_id} {r.start_ns} {r.end_ns} {int(r.ok)}" for r in sent)
    (out / "sent.txt").write_text("\n".join(lines) + "\n")
    report(out)


def report(out: Path) -> None:
    """The tables, from what a run left in `out` (the client's times and the spans)."""
    sent = []
    for line in (out / "sent.txt").read_text().splitlines():
        trace_id, start_ns, end_ns, ok = line.split()
        sent.append(Sent(trace_id, int(start_ns), int(end_ns), ok == "1"))
    traces, exports = decode_spans(out / "spans.bin")
    rows = []
    for request in sent:
        spans = traces.get(request.trace_id)
        cut = segments_ns(request, spans) if spans is not None and request.ok else None
        if cut is not None:
            rows.append((request, cut))
    latencies = sorted((r.end_ns - r.start_ns) / _NS_PER_MS for r, _ in rows)
    p50, p90, p99 = (
        latencies[min(len(latencies) - 1, int(len(latencies) * q))] for q in (0.5, 0.9, 0.99)
    )
    print(f"{len(sent)} requests measured, {len(rows)} with every span")
    print(f"client latency p50 {p50:.2f} ms, p90 {p90:.2f}, p99 {p99:.2f}\n")
    print("\n".join(_table(rows, exports)))
    print()
    print("\n".join(_slowest(rows, exports, sent[0].start_ns)))
    if (out / "probe").is_dir():
        print()
        print("\n".join(_beside_work(rows, _probed(out / "probe"))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tail_segments", description=__doc__)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--out", type=Path, default=Path("/tmp/tail-segments"))
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--probe", action="store_true", help="note the gateway's background work (tail_probe/)"
    )
    parser.add_argument("--report-only", action="store_true", help="re-read --out, run nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        report(args.out)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)

    async def main_pinned(plan: dict[str, str | None]) -> None:
        with run.upstream(args.out, plan["client"]) as upstream_port:
            await measure(args, plan, upstream_port)

    run.run_pinned(main_pinned, no_pin=args.no_pin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
