"""docs/metrics.md lists exactly what each process type exports: every catalogued metric is
exported with its type and labels, and nothing is exported that the catalog does not list."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from broker.config.loader import Config
from tests.broker.harness import make_config, post, runtime_options, service
from tests.deploy.catalog import Entry, read_catalog
from tests.redis_helpers import REDIS_URL
from workers.http import HttpClient
from workers.routing.engine import RoutingEngine
from workers.runtime.worker import Worker
from workers.runtime.worker_metrics import WorkerMetrics, metrics_endpoint
from workers.testing.server import FakeUpstream

HELLO = [{"role": "user", "content": "hello"}]
PROCESS_COLLECTOR = "process_*"


class Exported:
    """One scrape, as metric name -> (type, label names seen on its samples)."""

    def __init__(self, text: str) -> None:
        self.metrics: dict[str, tuple[str, set[str]]] = {}
        families = list(text_string_to_metric_families(text))
        counters = {f.name for f in families if f.type in ("counter", "histogram")}
        for family in families:
            if family.name.endswith("_created") and family.name[: -len("_created")] in counters:
                continue  # creation timestamps of counters and histograms
            name = family.name + ("_total" if family.type == "counter" else "")
            labels: set[str] = set()
            for sample in family.samples:
                labels |= set(sample.labels) - {"le"}
            self.metrics[name] = (family.type, labels)


def check_agreement(exported: Exported, catalog: dict[str, Entry], process: str) -> None:
    listed = {name: e for name, e in catalog.items() if process in e.processes}
    process_row = listed.pop(PROCESS_COLLECTOR)
    for name, (kind, labels) in exported.metrics.items():
        if name.startswith("process_"):
            assert f"`{name}`" in process_row.meaning, f"{name} is not listed under process_*"
            continue
        assert name in listed, f"{process} exports {name}, which docs/metrics.md does not list"
        entry = listed[name]
        assert kind == entry.type, f"{name}: exported as {kind}, catalogued as {entry.type}"
        if labels:
            assert labels == entry.labels, f"{name}: labels {labels} != {set(entry.labels)}"
    missing = sorted(set(listed) - set(exported.metrics))
    assert not missing, f"docs/metrics.md lists {missing} for the {process}, not exported"


@contextlib.asynccontextmanager
async def worker_with_metrics(config: Config) -> AsyncIterator[int]:
    """A worker serving its own /metrics on a free port; yields the port."""
    http = HttpClient()
    redis = Redis.from_url(REDIS_URL)
    metrics = WorkerMetrics()
    stopping = asyncio.Event()
    engine = RoutingEngine.unplanned(config.deployments, http, observer=metrics.routing)
    worker = Worker(redis, engine, runtime_options(config), metrics=metrics)
    task = asyncio.create_task(worker.run(stopping))
    try:
        async with metrics_endpoint(metrics.registry, "127.0.0.1", 0) as port:
            yield port
    finally:
        stopping.set()
        await task
        await http.close()
        await redis.aclose()


async def test_catalog_matches_what_front_doors_and_workers_export(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    catalog = read_catalog()
    # With a database, as `switchboard up` runs: the spend ledger's metrics are exported.
    database = f"general_settings:\n  database_url: sqlite:///{tmp_path / 'switchboard.db'}\n"
    config = make_config(fake.base_url + "/v1", namespace, general=database)
    async with (
        service(config, workers=0) as ([door], _),
        worker_with_metrics(config) as worker_port,
        aiohttp.ClientSession() as http,
    ):
        status, _, _ = await post(http, door.url, {"model": "gpt-test", "messages": HELLO})
        assert status == 200
        body = {"model": "gpt-test", "messages": HELLO, "stream": True}
        async with http.post(door.url + "/v1/chat/completions", json=body) as response:
            assert response.status == 200
            await response.read()
        await door.front.monitor.refresh()
        async with http.get(door.url + "/metrics") as response:
            front_text = await response.text()
        async with http.get(f"http://127.0.0.1:{worker_port}/metrics") as response:
            worker_text = await response.text()
    check_agreement(Exported(front_text), catalog, "front door")
    check_agreement(Exported(worker_text), catalog, "worker")


def test_catalog_names_follow_prometheus_conventions() -> None:
    for name, entry in read_catalog().items():
        if name == PROCESS_COLLECTOR:
            continue
        assert name.startswith("switchboard_"), name
        assert (entry.type == "counter") == name.endswith("_total"), name
        if entry.unit == "seconds" or entry.type == "histogram":
            assert "_seconds" in name, name
        assert not entry.labels & {"request_id", "user", "api_key", "key"}, name
