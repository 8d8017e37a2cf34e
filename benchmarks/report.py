"""Turn a run's results into ratios, the targets of issue 5, a markdown report and plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks import gateways, goals

Point = dict[str, Any]
# Switchboard 1+1 everything on, and the same without its otel callback.
ON = "switchboard-1x1" + gateways.EVERYTHING_ON
ON_WITHOUT_CALLBACKS = "switchboard-1x1" + gateways.ON_WITHOUT_CALLBACKS
PAIRS = {
    "switchboard-1x1": "litellm-1",
    "switchboard-2x2": "litellm-2",
    ON: "litellm-1",
}


def _f(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def point_line(p: Point) -> str:
    ttft = f" ttft p50 {_f(p['ttft_ms']['p50'], 2)} ms" if "ttft_ms" in p else ""
    cpu = p.get("cpu_ms_per_request")
    return (
        f"  {p['mode']:<10} c={p['concurrency']:<4} {p['rps']:>9,.0f} rps  "
        f"p50 {_f(p['latency_ms']['p50'], 2)} p99 {_f(p['latency_ms']['p99'], 2)} ms{ttft}"
        f"  cpu {_f(cpu, 2)} ms/req  errors {p['errors']}"
    )


def many_line(name: str, r: Point) -> str:
    return (
        f"  {name}: {r['completed_ok']}/{r['requests']} ok over {r['connections']} connections "
        f"in {r['elapsed_s']:.1f} s ({r['rate_per_s']:,.0f}/s), 5xx {r['server_errors_5xx']}, "
        f"bad streams {r['bad_streams']}, front door peak {_f(r['peak_root_rss_mib'])} MiB, "
        f"front door + workers peak {_f(r.get('peak_processes_rss_mib'))} MiB, "
        f"Redis peak {_f(r.get('peak_redis_rss_mib'))} MiB"
    )


def _index(document: dict[str, Any]) -> dict[tuple[str, str, int], Point]:
    return {
        (t["target"], p["mode"], p["concurrency"]): p
        for t in document["targets"]
        for p in t["points"]
    }


def _added(points: dict[tuple[str, str, int], Point], key: tuple[str, str, int]) -> dict[str, Any]:
    point, base = points.get(key), points.get(("direct", key[1], key[2]))
    if point is None or base is None:
        return {}
    added = {
        "added_p50_ms": point["latency_ms"]["p50"] - base["latency_ms"]["p50"],
        "added_p99_ms": point["latency_ms"]["p99"] - base["latency_ms"]["p99"],
    }
    if "ttft_ms" in point and "ttft_ms" in base:
        added["ttft_overhead_p50_ms"] = point["ttft_ms"]["p50"] - base["ttft_ms"]["p50"]
    return added


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def summarize(document: dict[str, Any]) -> dict[str, Any]:
    points = _index(document)
    for key, point in points.items():
        if key[0] != "direct":
            point.update(_added(points, key))
    ratios = []
    for ours, theirs in PAIRS.items():
        for (name, mode, c), point in points.items():
            other = points.get((theirs, mode, c))
            if name != ours or other is None:
                continue
            ratios.append(
                {
                    "ours": ours,
                    "theirs": theirs,
                    "mode": mode,
                    "concurrency": c,
                    "rps_ratio": _ratio(point["rps"], other["rps"]),
                    "cpu_ratio": _ratio(
                        other.get("cpu_ms_per_request"), point.get("cpu_ms_per_request")
                    ),
                }
            )
    return {
        "vs_litellm": ratios,
        "vs_portkey": _peer_ratios(points, "switchboard-1x1", "portkey"),
        "targets": goals.issue_5(document, points, ratios),
        "targets_issue_22": [
            *goals.issue_22(points, ratios, _burst(document), label="off: "),
            *goals.issue_22(points, ratios, None, sb=ON, label="on: "),
        ],
        "targets_issue_19": goals.issue_19(points, on=ON, without=ON_WITHOUT_CALLBACKS),
    }


def _burst(document: dict[str, Any]) -> Point | None:
    for target in document["targets"]:
        if "burst" in target:
            burst: Point = target["burst"]
            return burst
    return None


def _peer_ratios(points: dict[tuple[str, str, int], Point], ours: str, theirs: str) -> list[Point]:
    """Per point: their added latency and CPU beside ours (both on one core)."""
    rows = []
    for (name, mode, c), point in sorted(points.items()):
        other = points.get((theirs, mode, c))
        if name != ours or other is None:
            continue
        rows.append(
            {
                "mode": mode,
                "concurrency": c,
                "rps_ratio": _ratio(point["rps"], other["rps"]),
                "cpu_ratio": _ratio(
                    other.get("cpu_ms_per_request"), point.get("cpu_ms_per_request")
                ),
                "ours_added_p50_ms": point.get("added_p50_ms"),
                "theirs_added_p50_ms": other.get("added_p50_ms"),
                "ours_added_p99_ms": point.get("added_p99_ms"),
                "theirs_added_p99_ms": other.get("added_p99_ms"),
                "theirs_errors": other["errors"] + other.get("unfinished_at_end", 0),
            }
        )
    return rows


COLUMNS = (
    "target | mode | c | rps | p50 ms | p90 ms | p99 ms | +p50 ms | +p99 ms | TTFT p50 ms | "
    "+TTFT ms | CPU ms/req | peak RSS MiB | errors"
)


def _row(p: Point) -> str:
    lat = p["latency_ms"]
    ttft = p.get("ttft_ms", {})
    cells = [
        p["target"],
        p["mode"],
        str(p["concurrency"]),
        _f(p["rps"], 0),
        _f(lat["p50"], 2),
        _f(lat["p90"], 2),
        _f(lat["p99"], 2),
        _f(p.get("added_p50_ms"), 2),
        _f(p.get("added_p99_ms"), 2),
        _f(ttft.get("p50"), 2),
        _f(p.get("ttft_overhead_p50_ms"), 2),
        _f(p.get("cpu_ms_per_request"), 2),
        _f(p.get("peak_rss_mib"), 0),
        str(p["errors"] + p.get("unfinished_at_end", 0)),
    ]
    return "| " + " | ".join(cells) + " |"


def table(document: dict[str, Any]) -> str:
    lines = ["| " + COLUMNS + " |", "|" + "---|" * len(COLUMNS.split("|"))]
    for t in document["targets"]:
        lines += [_row(p) for p in t["points"]]
    return "\n".join(lines)


def _ratios_table(summary: dict[str, Any]) -> str:
    lines = [
        "| Switchboard | LiteLLM | mode | c | rps ratio | CPU/request ratio (theirs / ours) |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["vs_litellm"]:
        lines.append(
            f"| {r['ours']} | {r['theirs']} | {r['mode']} | {r['concurrency']} | "
            f"{_f(r['rps_ratio'])}x | {_f(r['cpu_ratio'])}x |"
        )
    return "\n".join(lines)


def _portkey_table(summary: dict[str, Any]) -> str:
    rows = summary.get("vs_portkey") or []
    if not rows:
        return "Not measured (no Node.js, or `--skip-portkey`)."
    lines = [
        "| mode | c | rps ratio (ours / theirs) | CPU/request ratio (theirs / ours) | "
        "+p50 ms ours / theirs | +p99 ms ours / theirs | Portkey errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r['concurrency']} | {_f(r['rps_ratio'], 2)}x | "
            f"{_f(r['cpu_ratio'], 2)}x | {_f(r['ours_added_p50_ms'], 2)} / "
            f"{_f(r['theirs_added_p50_ms'], 2)} | {_f(r['ours_added_p99_ms'], 2)} / "
            f"{_f(r['theirs_added_p99_ms'], 2)} | {r['theirs_errors']} |"
        )
    if any(r["mode"] == "stream" and r["rps_ratio"] is None for r in rows):
        lines.append(
            "\nPortkey answered no stream in this run (its log is logs/portkey.log in the run's "
            "folder). Version 1.15.2 on Node.js 20 throws `TypeError: immutable` for every "
            "stream: it appends a header to the immutable headers of a `fetch()` response."
        )
    return "\n".join(lines)


def _targets_table(summary: dict[str, Any], key: str = "targets") -> str:
    lines = ["| target (Switchboard 1+1, one core) | measured | goal | met |", "|---|---|---|---|"]
    for c in summary[key]:
        met = {True: "yes", False: "**no**", None: "not measured"}[c["met"]]
        lines.append(f"| {c['target']} | {_f(c['value'], 2)} | {c['goal']} | {met} |")
    return "\n".join(lines)


def _crashed(document: dict[str, Any]) -> str:
    """A line for each peer that died during the run (its missing points are why)."""
    lines = [
        f"{t['label']} died during the run ({t['crashed']}): its later points are missing, "
        "and its log is in logs/ in the run's folder.\n\n"
        for t in document["targets"]
        if "crashed" in t
    ]
    return "".join(lines)


def _many_table(document: dict[str, Any]) -> str:
    lines = [
        "| scenario | requests | connections | completed ok | elapsed s | rate /s | 5xx | "
        "bad streams | front door peak RSS MiB | front door + worker peak RSS MiB | "
        "Redis peak RSS MiB | CPU ms/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in document["targets"]:
        for name in ("soak", "burst"):
            if name in t:
                r = t[name]
                lines.append(
                    f"| {name} ({r['mode']}) | {r['requests']} | {r['connections']} | "
                    f"{r['completed_ok']} | {r['elapsed_s']:.1f} | {r['rate_per_s']:,.0f} | "
                    f"{r['server_errors_5xx']} | {r['bad_streams']} | "
                    f"{_f(r['peak_root_rss_mib'])} | {_f(r.get('peak_processes_rss_mib'))} | "
                    f"{_f(r.get('peak_redis_rss_mib'))} | "
                    f"{_f(r['cpu_ms_per_request'], 2)} |"
                )
    return "\n".join(lines)


def markdown(document: dict[str, Any]) -> str:
    m, v, s = document["machine"], document["versions"], document["settings"]
    pin = document["pinning"]
    pinning = (
        f"client and upstream on CPU {pin['client']}; one-core gateways (Switchboard 1+1 with "
        f"its Redis, LiteLLM 1 worker) on CPU {pin['gateway']}; 2-process layouts unpinned"
        if pin["client"] is not None
        else "none"
    )
    return f"""# Benchmark results

Generated by `python -m benchmarks.run` (see benchmarks/run.py). Every figure comes from one
run against the same fake upstream (`python -m workers.testing`) and the same client.

- Date: {document["date"]}; runtime {document["runtime_s"]:.0f} s
- Machine: {m["cpus"]} CPUs ({m["cpu_model"]}), kernel {m["kernel"]}; load average before
  {" ".join(m["loadavg_before"])}, after {" ".join(m["loadavg_after"])}
- Versions: Switchboard {v["switchboard_commit"]}, Python {v["python"]}, aiohttp {v["aiohttp"]},
  redis-py {v["redis_py"]}, LiteLLM {v["litellm"] or "not measured"}, Portkey gateway
  {v.get("portkey") or "not measured"}
- Load: closed loop, {s["duration_s"]:g} s measured after {s["warmup_s"]:g} s warm-up per point;
  streams carry {s["stream_chunks"]} content chunks with include_usage
- Pinning: {pinning}
- CPU ms/request: user+system time of the gateway's whole process tree (front doors, workers,
  embedded Redis; LiteLLM's uvicorn workers) from /proc, over the measured window
- `+p50`/`+p99`/`+TTFT`: minus the same percentile measured direct to the upstream
- Where the CPU goes and why the missed targets are missed: docs/performance.md
  (`python -m benchmarks.profile`)

## Targets (issue 5)

{_targets_table(document["summary"])}

## Targets (issue 22)

{_targets_table(document["summary"], "targets_issue_22")}

## Targets (issue 19): the otel callback's CPU, everything else on in both

{_targets_table(document["summary"], "targets_issue_19")}

## Against LiteLLM (same process count)

{_ratios_table(document["summary"])}

## Against Portkey's gateway (both on one core)

{_portkey_table(document["summary"])}

{_crashed(document)}## Soak and burst

{_many_table(document)}

## All points

{table(document)}

## Latency distributions

![non-stream latency CDF](latency-non-stream.png)
![stream latency CDF](latency-stream.png)
"""


def plots(document: dict[str, Any], out: Path) -> list[Path]:
    """One latency-distribution plot (CDF per target, one panel per concurrency) per mode."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plots")
        return []
    written = []
    concurrencies = document["settings"]["concurrency"]
    for mode in ("non-stream", "stream"):
        fig, axes = plt.subplots(1, len(concurrencies), figsize=(4.5 * len(concurrencies), 4))
        for ax, c in zip(list(getattr(axes, "flat", [axes])), concurrencies, strict=False):
            for t in document["targets"]:
                for p in t["points"]:
                    if p["mode"] == mode and p["concurrency"] == c and p["latencies_ms"]:
                        values = sorted(p["latencies_ms"])
                        ys = [(i + 1) / len(values) for i in range(len(values))]
                        ax.plot(values, ys, label=t["target"])
            ax.set_xscale("log")
            ax.set_title(f"{mode}, c={c}")
            ax.set_xlabel("latency (ms, log)")
            ax.set_ylabel("fraction of requests")
            ax.grid(True, alpha=0.3)
        fig.axes[0].legend(fontsize=8)
        fig.tight_layout()
        path = out / f"latency-{mode}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
