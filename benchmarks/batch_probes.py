"""What the batch benchmark watches besides latency (issue #20): each process's CPU
seconds over a phase (front door, worker, Redis, the fake upstream, the load generator),
the workers' queue wait per lane (from their /metrics histograms), the load average, and,
on request, a py-spy profile of the front door and the worker."""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.procs import cpu_s, descendants
from benchmarks.profile import is_batch_worker, py_spy, read_collapsed, roles

QUEUE_WAIT = "switchboard_worker_queue_wait_seconds"
Buckets = dict[str, dict[float, float]]  # lane -> upper bound -> cumulative count


def process_roles(service_pid: int, others: Sequence[int] = ()) -> dict[str, list[int]]:
    """The service's processes by role, and the fake upstream (a child of this process;
    `others`: services of this process to leave out of it)."""
    found = roles(service_pid)
    # `up`'s batch workers (`worker --batches`, issue #20): a role of their own.
    found["batch worker"] = [pid for pid in found["worker"] if is_batch_worker(pid)]
    found["worker"] = [pid for pid in found["worker"] if pid not in found["batch worker"]]
    service = {pid for root in (service_pid, *others) for pid in descendants(root)}
    found["upstream"] = [
        pid for pid in descendants(os.getpid())[1:] if pid not in service and pid != service_pid
    ]
    return found


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Phase:
    """CPU by role, queue waits and the load average from `start()` to `stop()`."""

    def __init__(self, by_role: dict[str, list[int]], metrics_urls: list[str]) -> None:
        self.by_role = by_role
        self.metrics_urls = metrics_urls
        self._cpu0: dict[str, float] = {}
        self._waits0: Buckets = {}
        self._started = 0.0

    def _cpu(self) -> dict[str, float]:
        used = {role: cpu_s(pids) for role, pids in self.by_role.items()}
        used["load generator"] = own_cpu_s()
        return used

    async def start(self, http: aiohttp.ClientSession) -> None:
        self._cpu0 = self._cpu()
        self._waits0 = await queue_waits(http, self.metrics_urls)
        self.load_before = os.getloadavg()[0]

    async def stop(self, http: aiohttp.ClientSession, seconds: float) -> dict[str, Any]:
        cpu = self._cpu()
        waits = await queue_waits(http, self.metrics_urls)
        return {
            "seconds": seconds,
            "load_average": [self.load_before, os.getloadavg()[0]],
            "cpu_s": {role: cpu[role] - self._cpu0.get(role, 0.0) for role in cpu},
            "queue_wait": {
                lane: quantiles(_minus(waits[lane], self._waits0.get(lane, {}))) for lane in waits
            },
        }


async def queue_waits(http: aiohttp.ClientSession, urls: list[str]) -> Buckets:
    """The workers' queue-wait histograms, summed over workers."""
    found: Buckets = {}
    for url in urls:
        async with http.get(url) as response:
            text = await response.text()
        for family in text_string_to_metric_families(text):
            if family.name != QUEUE_WAIT:
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    lane = found.setdefault(sample.labels["lane"], {})
                    bound = float(sample.labels["le"])
                    lane[bound] = lane.get(bound, 0.0) + sample.value
    return found


def _minus(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def quantiles(buckets: dict[float, float]) -> dict[str, float]:
    """p50 and p99 (upper bucket bounds, ms) of a histogram's cumulative counts."""
    ordered = sorted(buckets.items())
    total = ordered[-1][1] if ordered else 0.0
    found: dict[str, float] = {"count": total}
    for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99)):
        bound = next((b for b, count in ordered if total and count >= q * total), float("nan"))
        found[name] = bound * 1000
    return found


@contextlib.contextmanager
def profiled(by_role: dict[str, list[int]], out: Path, seconds: float) -> Iterator[None]:
    """py-spy on the front door and the worker for `seconds` (when py-spy is installed);
    prints each one's busiest functions afterwards."""
    spy = py_spy()
    if spy is None:
        yield
        return
    samplers = {}
    for role in ("front door", "worker"):
        path = out / f"batches-{role.replace(' ', '-')}.txt"
        argv = [spy, "record", "--pid", str(by_role[role][0]), "--duration", str(int(seconds))]
        argv += ["--rate", "100", "--format", "raw", "--nonblocking", "--output", str(path)]
        samplers[role] = (path, subprocess.Popen(argv, stdout=subprocess.DEVNULL))
    try:
        yield
    finally:
        for role, (path, sampler) in samplers.items():
            sampler.wait(seconds + 30)
            areas, functions, total = read_collapsed(path)
            print(f"-- {role}: {total} samples")
            for name, count in functions.most_common(15):
                print(f"{count / max(total, 1):6.1%}  {name}")
