"""What the `otel` callback costs per request in the configuration users run (issue #19's
"callbacks on may add at most 10% CPU per request"), read so that the machine's drift does not
decide it: rounds of `benchmarks.profile --everything-on`, without `otel` and with it at each
sample rate, interleaved (off, 0.25, ..., 1, then 1, ..., 0.25, off), each a fresh `up` pinned
to one core.

    python -m benchmarks.otel_cost                       # 4 rounds, rates 0.25, 0.5 and 1
    python -m benchmarks.otel_cost --rounds 6 --rates 0.25,1 --duration 8

Each run's CPU per request covers every gateway process (front door, workers, Redis) and the
delivery of the window's events to the ledger and the span export (benchmarks/profile.py
waits for both). A mode's cost is read per round, against that round's run without `otel`
(run next to it, so a slower minute hits both): the median of those paired differences is
the figure; the least-CPU runs' difference is printed beside it. Then the floor: what the
OpenTelemetry SDK alone takes to make and encode a request's spans (benchmarks/otel_encoding.py),
as a share of a request's CPU without `otel`. benchmarks/HOOKS.md quotes them.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field

from benchmarks import otel_encoding

TARGET = 0.10
OFF = "off"
_ALL = re.compile(r"^\| \*\*all\*\* \| \*\*([0-9,]+)\*\* \|$", re.MULTILINE)
SHAPES = ("non-stream", "stream")


@dataclass
class Mode:
    name: str
    argv: list[str]
    # CPU µs per request, by shape, one per round.
    runs: dict[str, list[int]] = field(default_factory=lambda: {s: [] for s in SHAPES})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rates", default="0.25,0.5,1", help="sample rates, comma-separated")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--also-workers-deliver",
        action="store_true",
        help="each rate again with `up --callback-workers 0` (no callbacks process: the "
        "batch process delivers, an interactive worker when that falls behind)",
    )
    return parser.parse_args(argv)


def modes(rates: str, *, also_workers_deliver: bool = False) -> list[Mode]:
    found = [Mode(OFF, ["--without-otel"])]
    for rate in rates.split(","):
        value = float(rate)
        if not 0 <= value <= 1:
            raise SystemExit(f"a sample rate is between 0 and 1, not {rate}")
        found.append(Mode(f"otel, sample_rate {value:g}", ["--sample-rate", str(value)]))
        if also_workers_deliver:
            argv = ["--sample-rate", str(value), "--callback-workers", "0"]
            found.append(Mode(f"otel, sample_rate {value:g}, workers deliver", argv))
    return found


def profile_run(mode: Mode, args: argparse.Namespace) -> list[int]:
    """One `benchmarks.profile` run: the CPU µs per request of non-stream, then stream."""
    argv = [sys.executable, "-m", "benchmarks.profile", "--everything-on", "--no-py-spy"]
    argv += ["--concurrency", str(args.concurrency), "--duration", str(args.duration)]
    done = subprocess.run(argv + mode.argv, capture_output=True, text=True, check=True)
    found = [int(value.replace(",", "")) for value in _ALL.findall(done.stdout)]
    if len(found) != len(SHAPES):
        raise RuntimeError(f"benchmarks.profile printed no totals:\n{done.stdout}{done.stderr}")
    return found


def report(found: list[Mode]) -> list[str]:
    off = found[0]
    lines = ["| round | shape | " + " | ".join(m.name for m in found) + " |"]
    lines.append("|---|---|" + "---:|" * len(found))
    for shape in SHAPES:
        for i, base in enumerate(off.runs[shape]):
            cells = [f"{base:,}"]
            for mode in found[1:]:
                value = mode.runs[shape][i]
                cells.append(f"{value:,} ({value / base - 1:+.1%})")
            lines.append(f"| {i + 1} | {shape} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| mode | shape | median of the rounds' differences | least-CPU runs | within 10% |",
    ]
    lines.append("|---|---|---:|---:|---|")
    for mode in found[1:]:
        for shape in SHAPES:
            paired = [v / b - 1 for v, b in zip(mode.runs[shape], off.runs[shape], strict=True)]
            median = statistics.median(paired)
            least = min(mode.runs[shape]) / min(off.runs[shape]) - 1
            verdict = "yes" if median <= TARGET else "no"
            lines.append(f"| {mode.name} | {shape} | {median:+.1%} | {least:+.1%} | {verdict} |")
    return lines


def floor_lines(cost: otel_encoding.EncodingCost, off: Mode) -> list[str]:
    """The SDK's own share: its making and encoding of a request's spans, timed alone
    (benchmarks/otel_encoding.py), against a request's CPU without `otel` (the median
    run). With every request traced, tracing cannot cost less than this."""
    lines = ["", *otel_encoding.report(cost)]
    for shape in SHAPES:
        base = statistics.median(off.runs[shape])
        lines.append(
            f"- {shape}: {cost.total_us / base:.1%} of a request's {base:,.0f} µs without "
            "`otel`: the least that tracing every request adds"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    found = modes(args.rates, also_workers_deliver=args.also_workers_deliver)
    for round_no in range(1, args.rounds + 1):
        # Every other round in the reverse order (off first, then last): this machine's
        # speed drifts within minutes, and a fixed order would hand the drift to one mode.
        for mode in found if round_no % 2 else found[::-1]:
            for shape, value in zip(SHAPES, profile_run(mode, args), strict=True):
                mode.runs[shape].append(value)
            print(f"round {round_no}, {mode.name}: done", file=sys.stderr, flush=True)
    print("\n".join(report(found)))
    print("\n".join(floor_lines(otel_encoding.measure(), found[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
