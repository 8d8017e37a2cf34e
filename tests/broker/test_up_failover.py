"""`switchboard up` as one service (issue #15): it sees a worker exit at once and tells the
others, who take its requests over without waiting for its heartbeat to go stale; and its
front doors, sharing one port, answer /metrics with the whole service's counters, which
never go down, not even when one of them is killed and started again."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.broker.processes import (
    child_pids,
    cmdline,
    free_port,
    held_requests,
    switchboard,
    wait_ready,
    worker_pids,
    write_config,
)
from tests.redis_helpers import REDIS_URL
from tests.waiting import eventually
from workers import redis_streams
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.slow

HELLO: Any = [{"role": "user", "content": "hello"}]
TEXT = "This is a fake reply from gpt-4o-mini."
SLOW = """\
- model_name: slow-answer
  litellm_params:
    model: openai/gpt-4o-mini~latency=3
    api_base: {base}
    api_key: sk-fake
"""


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[tuple[str, tuple[Any, ...]], float]:
    """Every counter-like sample (counters, histogram buckets, counts and sums) by name and
    labels."""
    async with http.get(url + "/metrics") as response:
        assert response.status == 200
        text = await response.text()
    samples: dict[tuple[str, tuple[Any, ...]], float] = {}
    for family in text_string_to_metric_families(text):
        if family.type not in ("counter", "histogram"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def test_up_announces_a_dead_worker_and_its_requests_move_at_once(
    fake: FakeUpstream, namespace: str, redis: Redis, tmp_path: Path
) -> None:
    # A grace far longer than the wait: only `up`'s announcement can explain a quick takeover.
    settings = {"takeover_grace_s": 20, "worker_concurrency": 8}
    base = fake.base_url + "/v1"
    models = SLOW.format(base=base)
    config = write_config(tmp_path, base, namespace, settings=settings, extra_models=models)
    port, metrics_port = free_port(), free_port()
    args = ["up", "--config", str(config), "--port", str(port), "--workers", "2"]
    args += ["--metrics-port", str(metrics_port)]
    lane = Keys(namespace).lane("default")
    async with switchboard(*args, directory=tmp_path, redis_url=REDIS_URL) as up:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, workers=2, processes=(up,))
        pids = await worker_pids(redis, namespace)
        async with aiohttp.ClientSession() as http:
            body = {"model": "slow-answer", "messages": HELLO}
            answers = [
                asyncio.create_task(http.post(url + "/v1/chat/completions", json=body))
                for _ in range(4)
            ]

            async def taken() -> bool:
                return int((await redis.xpending(lane, redis_streams.GROUP))["pending"]) == 4

            await eventually(taken, what="the requests taken")
            holders = {name: await held_requests(redis, lane, name) for name in pids}
            victim = max(holders, key=lambda name: len(holders[name]))
            os.kill(pids[victim], signal.SIGKILL)
            responses = await asyncio.wait_for(asyncio.gather(*answers), 30)
            bodies = [await response.json() for response in responses]
            # The workers serve their metrics on the ports after the front door's.
            survivor_ports = [metrics_port + 1, metrics_port + 2]
            delays = []
            for worker_port in survivor_ports:
                try:
                    found = await scrape(http, f"http://127.0.0.1:{worker_port}")
                except aiohttp.ClientError:
                    continue  # the killed one (or its restart, not up yet)
                for (name, _labels), value in found.items():
                    if name == "switchboard_worker_takeover_delay_seconds_sum" and value:
                        delays.append(value)
        assert [b["choices"][0]["message"]["content"] for b in bodies] == [TEXT] * 4
        moved = [r for r in responses if r.headers["x-request-id"] in holders[victim]]
        assert moved and all(r.headers["x-switchboard-takeovers"] == "1" for r in moved)
        # Taken over well within the grace of 20 s: `up` told the survivor.
        assert delays and max(delays) < 5
        print(f"\n[up] taken over {max(delays):.2f}s after the dead worker's last heartbeat")
        assert "exited with" in up.output()
        assert await up.stop() == 0


async def test_front_doors_sharing_a_port_answer_metrics_for_the_whole_service(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    base = fake.base_url + "/v1"
    config = write_config(tmp_path, base, namespace, settings={"public_metrics": "true"})
    port = free_port()
    args = ("up", "--config", str(config), "--port", str(port), "--front-doors", "2")
    sent = 0
    async with switchboard(*args, directory=tmp_path, redis_url=REDIS_URL) as up:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(url, workers=1, processes=(up,))
        scrapes = []
        # A new connection each time, so the kernel spreads them over both front doors.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            for round_ in range(20):
                body = {"model": "gpt-test", "messages": HELLO}
                for _ in range(3):
                    async with http.post(url + "/v1/chat/completions", json=body) as response:
                        assert response.status == 200
                    sent += 1
                if round_ == 10:
                    restarted = await kill_a_front_door_child(up.pid)
                    await eventually(restarted, timeout_s=60, what="its restart")
                    await wait_ready(url, workers=1, processes=(up,))
                scrapes.append(await scrape(http, url))

            async def counted_all() -> bool:
                return requests_total(await scrape(http, url)) == sent

            await eventually(counted_all, what="every request counted")
            scrapes.append(await scrape(http, url))
        assert await up.stop() == 0
    # Every series only ever grows, scrape after scrape, across the restart too.
    last: dict[tuple[str, tuple[Any, ...]], float] = defaultdict(float)
    for samples in scrapes:
        for key, value in samples.items():
            assert value >= last[key], f"{key} went from {last[key]} to {value}"
            last[key] = value
    assert requests_total(scrapes[-1]) == sent


def requests_total(samples: dict[tuple[str, tuple[Any, ...]], float]) -> float:
    return sum(v for (name, _), v in samples.items() if name == "switchboard_requests_total")


async def kill_a_front_door_child(up_pid: int) -> Any:
    """kill -9 the front door `up` runs as a child; returns a check that `up` started a new
    one."""
    children = [pid for pid in child_pids(up_pid) if "serve" in cmdline(pid)]
    (doomed,) = children
    os.kill(doomed, signal.SIGKILL)

    def restarted() -> bool:
        return any(pid != doomed and "serve" in cmdline(pid) for pid in child_pids(up_pid))

    return restarted
