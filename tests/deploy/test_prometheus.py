"""The dashboards and alerts against a real Prometheus: `switchboard up` (a front door and a
worker, each with its own metrics port) serves a short load while Prometheus scrapes it
every second; then every panel query and every alert expression goes through Prometheus'
HTTP API. Each must parse, and every panel must return data, since the load exercises
what they show (a broken model supplies the errors).

Needs Debian's `prometheus` package (/usr/bin/prometheus and promtool)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.deploy.dashboards import ALERTS, DEPLOY, alert_rules, panel_queries
from tests.redis_helpers import REDIS_URL
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="no prometheus/promtool binary (Debian: apt-get install -y prometheus)",
)

HELLO = [{"role": "user", "content": "hello"}]
MASTER = "sk-master-prometheus"
TEAM_A = "sk-team-a-prometheus"
START_TIMEOUT_S = 30.0
# Panels whose series the live test's config does not produce, and why.
NOT_EXERCISED: dict[str, str] = {
    "Callback delivery": "the test's config has no callbacks (no delivery series)",
    "Soft budgets crossed": "needs a database key with a soft budget (tests/broker/tenancy)",
    "Refused by limits and budgets (requests/s)": "the load stays within every limit",
}


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (`up --metrics-port` numbers upwards)."""
    for _ in range(200):
        first = random.randint(20_000, 40_000)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first, first + count):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    raise RuntimeError("no free port range")


def config_yaml(upstream_v1: str, namespace: str) -> str:
    return textwrap.dedent(
        f"""\
        model_list:
          - model_name: gpt-test
            litellm_params:
              model: openai/gpt-4o-mini~cached=2
              api_base: {upstream_v1}
              api_key: sk-fake
            model_info:
              id: gpt-test-a
              base_model: gpt-4o-mini
          - model_name: broken
            litellm_params:
              model: openai/gpt-4o-mini~status=500
              api_base: {upstream_v1}
              api_key: sk-fake
        router_settings:
          num_retries: 0
        litellm_settings:
          cache: true
          cache_params: {{mode: default_off}}  # only hooks_load's requests use it
        guardrails:
          - guardrail_name: no-launch-codes
            litellm_params:
              {{guardrail: keywords, mode: pre_call, default_on: true, keywords: [launch codes]}}
        general_settings:
          master_key: {MASTER}
        switchboard_settings:
          namespace: {namespace}
          api_keys: [{{alias: team-a, key: {TEAM_A}}}]
          heartbeat_interval_s: 0.5
          worker_ttl_s: 3
          drain_timeout_s: 2
        """
    )


def prometheus_yaml(front_door: int, worker: int, batch_worker: int, api: int) -> str:
    """The dashboards' jobs scrape the metrics ports (`up`'s batch worker runs the batches,
    issue #20, so their panels' series come from it); two more jobs scrape the front door's
    API port, with and without the master key, keeping only `up` (so the dashboards see
    each series once)."""
    return textwrap.dedent(
        f"""\
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        rule_files:
          - {ALERTS}
        scrape_configs:
          - job_name: switchboard-front-door
            static_configs: [{{targets: ["127.0.0.1:{front_door}"]}}]
          - job_name: switchboard-worker
            static_configs: [{{targets: ["127.0.0.1:{worker}"]}}]
          - job_name: switchboard-batch-worker
            static_configs: [{{targets: ["127.0.0.1:{batch_worker}"]}}]
          - job_name: api-port-with-key
            authorization: {{credentials: {MASTER}}}
            static_configs: [{{targets: ["127.0.0.1:{api}"]}}]
            metric_relabel_configs: [{{source_labels: [__name__], regex: .+, action: drop}}]
          - job_name: api-port-without-key
            static_configs: [{{targets: ["127.0.0.1:{api}"]}}]
            metric_relabel_configs: [{{source_labels: [__name__], regex: .+, action: drop}}]
        """
    )


@contextlib.asynccontextmanager
async def process(argv: list[str], log: Path, **env: str) -> AsyncIterator[None]:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
        try:
            yield
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()


async def wait_until_ok(http: aiohttp.ClientSession, url: str, log: Path) -> None:
    async def ok() -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url) as response:
                return response.status == 200
        return False

    try:
        await eventually(ok, timeout_s=START_TIMEOUT_S, poll_s=0.1, what=f"{url} to answer 200")
    except AssertionError as failure:
        text = await asyncio.to_thread(log.read_text)
        pytest.fail(f"{failure}; log:\n{text[-3000:]}")


class PromAPI:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def query(self, expr: str) -> list[Any]:
        async with self.http.get(self.base + "/api/v1/query", params={"query": expr}) as r:
            body = await r.json()
        assert body["status"] == "success", f"{expr}\n-> {body.get('error')}"
        result: list[Any] = body["data"]["result"]
        return result

    async def value(self, expr: str) -> float:
        result = await self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    async def get(self, path: str, **params: str) -> Any:
        async with self.http.get(self.base + path, params=params) as r:
            body = await r.json()
        assert body["status"] == "success", body
        return body["data"]


async def load(http: aiohttp.ClientSession, url: str) -> int:
    """A short mixed load: plain and streamed completions, and failing ones, half of them
    with the master key and half with team-a's. Returns how many requests were sent."""

    async def one(model: str, stream: bool, key: str) -> None:
        body: dict[str, Any] = {"model": model, "messages": HELLO, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        headers = {"Authorization": f"Bearer {key}"}
        async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as response:
            await response.read()
            assert response.status == (200 if model == "gpt-test" else 500), model

    calls = [
        one("gpt-test", stream, key)
        for stream in (False, True)
        for key in (MASTER, TEAM_A)
        for _ in range(4)
    ]
    calls += [one("broken", False, MASTER) for _ in range(3)]
    await asyncio.gather(*calls)
    return len(calls)


async def hooks_load(http: aiohttp.ClientSession, url: str) -> None:
    """What the cache and guardrail panels show: a request the guardrail blocks, and one
    answered upstream and then from the cache (opt-in: the counted load never hits)."""
    headers = {"Authorization": f"Bearer {MASTER}"}
    refused = {"model": "gpt-test", "messages": [{"role": "user", "content": "launch codes"}]}
    async with http.post(url + "/v1/chat/completions", json=refused, headers=headers) as reply:
        assert reply.status == 400, await reply.text()
    cached = {"model": "gpt-test", "messages": HELLO, "cache": {"use-cache": True}}

    async def hit() -> bool:
        async with http.post(url + "/v1/chat/completions", json=cached, headers=headers) as reply:
            await reply.read()
            return reply.headers.get("x-switchboard-cache") == "hit"

    await eventually(hit, timeout_s=10, poll_s=0.1, what="a cache hit")


def run_promtool(*args: str) -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_prometheus
def test_promtool_accepts_the_rules_and_the_compose_scrape_config() -> None:
    run_promtool("check", "rules", str(ALERTS))
    run_promtool("check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))


@needs_prometheus
def test_every_alert_fires_on_its_trouble_and_only_then() -> None:
    """alerts_test.yml: promtool's rule unit tests, a firing and a quiet case per alert."""
    tests = ALERTS.with_name("alerts_test.yml")
    run_promtool("test", "rules", str(tests))
    cases = [
        case
        for test in yaml.safe_load(tests.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fired == quiet == set(alert_rules())


@needs_prometheus
async def test_every_panel_and_alert_query_runs_on_prometheus_scraping_a_live_service(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    assert PROMETHEUS is not None
    # The API, then the metrics ports of the front door, the worker and the batch worker.
    port = free_ports(4)
    prom_port = free_ports(1)
    (tmp_path / "config.yaml").write_text(config_yaml(fake.base_url + "/v1", namespace))
    (tmp_path / "prometheus.yml").write_text(prometheus_yaml(port + 1, port + 2, port + 3, port))
    run_promtool("check", "config", str(tmp_path / "prometheus.yml"))
    up = [sys.executable, "-m", "broker.cli", "up", "--config", str(tmp_path / "config.yaml")]
    up += ["--port", str(port), "--workers", "1", "--metrics-port", str(port + 1)]
    prometheus = [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}"]
    prometheus += [f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
    prometheus += [f"--web.listen-address=127.0.0.1:{prom_port}"]
    service_url = f"http://127.0.0.1:{port}"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
        process(up, tmp_path / "up.log", REDIS_URL=REDIS_URL),
        process(prometheus, tmp_path / "prometheus.log"),
    ):
        await wait_until_ok(http, service_url + "/health/readiness", tmp_path / "up.log")
        await wait_until_ok(
            http, f"http://127.0.0.1:{prom_port}/-/ready", tmp_path / "prometheus.log"
        )
        api = PromAPI(http, f"http://127.0.0.1:{prom_port}")
        await wait_for(api, 'count(up{job=~"switchboard-.*"} == 1)', 3)
        # /metrics on the API port: the master key scrapes it, no key does not (item 8).
        await wait_for(api, 'count(up{job="api-port-with-key"} == 1)', 1)
        await wait_for(api, 'count(up{job="api-port-without-key"} == 0)', 1)
        sent = await load(http, service_url)
        await hooks_load(http, service_url)
        await wait_for(api, "sum(switchboard_requests_total)", sent)
        await wait_for(api, "sum(switchboard_worker_jobs_started_total)", sent)
        # Two more scrapes after the load, so every rate over 30s has its points.
        await wait_for(api, "min(timestamp(up))", time.time() + 2)
        await check_panels(api)
        await check_alerts(api)


async def wait_for(api: PromAPI, expr: str, at_least: float) -> None:
    """Poll Prometheus (nothing else can tell us) until `expr` reaches `at_least`."""

    async def reached() -> bool:
        return await api.value(expr) >= at_least

    await eventually(reached, timeout_s=START_TIMEOUT_S, poll_s=0.2, what=f"{expr} >= {at_least}")


async def check_panels(api: PromAPI) -> None:
    empty = []
    for query in panel_queries():
        result = await api.query(query.expr)
        if not result and query.panel not in NOT_EXERCISED:
            empty.append(f"{query.dashboard} / {query.panel}: {query.expr}")
    assert not empty, "panels without data after the load:\n" + "\n".join(empty)
    # Variables: label_values(metric, label) must list something.
    for label, metric in (("model_group", "switchboard_requests_total"),):
        values = await api.get(f"/api/v1/label/{label}/values", **{"match[]": metric})
        assert {"gpt-test", "broken"} <= set(values)
    lanes = await api.get("/api/v1/label/lane/values", **{"match[]": "switchboard_queue_depth"})
    # The configured lane and the batch lane (issue #20), which every worker reads last.
    assert lanes == ["batches", "default"]
    deployments = await api.get(
        "/api/v1/label/deployment/values", **{"match[]": "switchboard_requests_total"}
    )
    assert "gpt-test-a" in deployments
    callers = await api.get(
        "/api/v1/label/api_key_alias/values", **{"match[]": "switchboard_api_key_cost_usd_total"}
    )
    assert set(callers) == {"master", "team-a"}


async def check_alerts(api: PromAPI) -> None:
    for expr in alert_rules().values():
        await api.query(expr)  # parses and evaluates; fails the test with Prometheus' error
    # Prometheus itself evaluates the rule file every second: no rule may report an error.
    rules: list[dict[str, Any]] = []

    async def all_evaluated() -> bool:
        nonlocal rules
        data = await api.get("/api/v1/rules")
        rules = [rule for group in data["groups"] for rule in group["rules"]]
        return bool(rules) and all(
            rule.get("lastEvaluation", "0001").startswith("20") for rule in rules
        )

    await eventually(all_evaluated, timeout_s=START_TIMEOUT_S, poll_s=0.2, what="every rule")
    assert {rule["name"] for rule in rules} == set(alert_rules())
    unhealthy = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not unhealthy
    # With a worker alive, the no-worker alert stays quiet.
    firing = {rule["name"] for rule in rules if rule["state"] != "inactive"}
    assert "SwitchboardNoLiveWorkers" not in firing
