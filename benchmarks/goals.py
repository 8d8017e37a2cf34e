"""The goals each run is checked against: issue 5's (the engine) and issue 22's (everything
on, against the fastest peer). Each check is a row: what, the value measured, the goal, met."""

from __future__ import annotations

from typing import Any

Point = dict[str, Any]
Points = dict[tuple[str, str, int], Point]
SB = "switchboard-1x1"


def check(name: str, value: float | None, goal: str, is_met: bool | None) -> dict[str, Any]:
    return {"target": name, "value": value, "goal": goal, "met": is_met}


def _at_most(name: str, value: float | None, limit: float, unit: str = "ms") -> dict[str, Any]:
    return check(name, value, f"<= {limit:g} {unit}", None if value is None else value <= limit)


def _at_least(name: str, value: float | None, floor: float) -> dict[str, Any]:
    return check(name, value, f">= {floor:g}x", None if value is None else value >= floor)


def issue_5(
    document: dict[str, Any], points: dict[tuple[str, str, int], Point], ratios: list[Point]
) -> list[dict[str, Any]]:
    sb = "switchboard-1x1"
    checks = []
    for r in ratios:
        if r["ours"] == sb and r["concurrency"] == 64:
            v = r["rps_ratio"]
            checks.append(
                check(
                    f"{r['mode']} c=64 rps vs LiteLLM", v, ">= 20x", None if v is None else v >= 20
                )
            )
            v = r["cpu_ratio"]
            checks.append(
                check(
                    f"{r['mode']} c=64 CPU/request, LiteLLM's over ours",
                    v,
                    ">= 20x",
                    None if v is None else v >= 20,
                )
            )
    for mode, c, field, limit in (
        ("non-stream", 1, "added_p50_ms", 1.5),
        ("non-stream", 1, "added_p99_ms", 4.0),
        ("non-stream", 8, "added_p50_ms", 2.0),
        ("non-stream", 64, "added_p99_ms", 25.0),
        ("stream", 8, "ttft_overhead_p50_ms", 2.0),
    ):
        v = points.get((sb, mode, c), {}).get(field)
        checks.append(
            check(f"{mode} c={c} {field}", v, f"<= {limit} ms", None if v is None else v <= limit)
        )
    for t in document["targets"]:
        if "soak" in t:
            s = t["soak"]
            ok = s["all_completed"] and s["bad_streams"] == 0 and s["errors"] == 0
            checks.append(
                check(f"soak {s['requests']} streams all complete in order", None, "all", ok)
            )
            v = s["peak_root_rss_mib"]
            checks.append(
                check("soak front door peak RSS MiB", v, "<= 400", v is not None and v <= 400)
            )
        if "burst" in t:
            b = t["burst"]
            ok = b["all_completed"] and b["server_errors_5xx"] == 0
            checks.append(check(f"burst {b['requests']} all complete, no 5xx", None, "all", ok))
            v = b.get("peak_processes_rss_mib")
            checks.append(
                check(
                    "burst front door + worker peak RSS MiB (the queue is in Redis)",
                    v,
                    "<= 400",
                    v is not None and v <= 400,
                )
            )
    return checks


def issue_22(
    points: Points, ratios: list[Point], burst: Point | None, *, sb: str = SB, label: str = ""
) -> list[dict[str, Any]]:
    """Issue 22's targets for one of the one-core Switchboard targets (`sb`): everything off
    (the plain config) or on (benchmarks/realistic.py); `label` prefixes each row."""

    def field(mode: str, concurrency: int, name: str) -> float | None:
        return _field(points, sb, mode, concurrency, name)

    checks = [
        _at_most(f"{label}non-stream c=1 added p50", field("non-stream", 1, "added_p50_ms"), 0.8),
        _at_most(f"{label}non-stream c=1 added p99", field("non-stream", 1, "added_p99_ms"), 2.0),
        _at_most(
            f"{label}stream c=1 added TTFT p50", field("stream", 1, "ttft_overhead_p50_ms"), 0.9
        ),
    ]
    for r in ratios:
        if r["ours"] != sb or r["concurrency"] != 64:
            continue
        floor = 30.0 if r["mode"] == "non-stream" else 60.0
        checks.append(_at_least(f"{label}{r['mode']} c=64 rps vs LiteLLM", r["rps_ratio"], floor))
        if r["mode"] == "non-stream":
            checks.append(
                _at_least(
                    f"{label}non-stream c=64 CPU/request, LiteLLM's over ours",
                    r["cpu_ratio"],
                    30.0,
                )
            )
    for mode in ("non-stream", "stream"):
        latency = points.get((sb, mode, 64), {}).get("latency_ms")
        spread = None if not latency else latency["p99"] / latency["p50"]
        checks.append(_at_most(f"{label}{mode} c=64 p99 / p50", spread, 2.0, "x"))
    if burst is not None:
        after = burst.get("rss_after_mib")
        checks.append(_at_most("tree RSS (Redis included) after the burst", after, 250, "MiB"))
        idle, settled = burst.get("rss_idle_mib"), burst.get("rss_settled_mib")
        growth = None if idle is None or settled is None else (settled / idle - 1) * 100
        checks.append(_at_most("tree RSS after settling, over idle", growth, 10, "%"))
    return checks


def _field(points: Points, sb: str, mode: str, concurrency: int, name: str) -> float | None:
    value = points.get((sb, mode, concurrency), {}).get(name)
    return value if isinstance(value, float | int) else None


def issue_19(points: Points, *, on: str, without: str) -> list[dict[str, Any]]:
    """Issue 19's "callbacks on (otel to a local receiver) may add at most 10% CPU per
    request": the everything-on target (`on`) against the same without its callback
    (`without`), at each concurrency both ran, streams and not."""
    checks = []
    for (name, mode, concurrency), point in sorted(points.items()):
        base = points.get((without, mode, concurrency))
        if name != on or base is None:
            continue
        with_cb, without_cb = point.get("cpu_ms_per_request"), base.get("cpu_ms_per_request")
        added = None
        if with_cb is not None and without_cb:
            added = (with_cb / without_cb - 1) * 100
        checks.append(
            _at_most(f"otel callback, {mode} c={concurrency}: CPU/request added", added, 10, "%")
        )
    return checks
