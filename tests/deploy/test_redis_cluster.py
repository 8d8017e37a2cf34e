"""Switchboard on a Redis Cluster: `switchboard up` with REDIS_URL=redis+cluster://... runs
chat completions, plain and streamed, through a front door and a worker against a local
three-master cluster. Hash-tagged keys keep each command within one slot; pub/sub goes
through one node (classic PUBLISH reaches every node)."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import RedisCluster

from tests.deploy.redis_cluster import REDIS_CLI, REDIS_SERVER, redis_cluster
from tests.deploy.test_prometheus import free_ports, process, wait_until_ok
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None, reason="no redis-server/redis-cli binary"
)

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[int]]:
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    with redis_cluster(workdir) as ports:
        yield ports


def config_yaml(upstream_v1: str) -> str:
    return textwrap.dedent(
        f"""\
        model_list:
          - model_name: gpt-test
            litellm_params:
              model: openai/gpt-4o-mini~chunks=5
              api_base: {upstream_v1}
              api_key: sk-fake
        switchboard_settings:
          namespace: sbcluster
          lanes: [interactive, batch]
          heartbeat_interval_s: 0.5
          worker_ttl_s: 3
          drain_timeout_s: 2
        """
    )


async def test_chat_completions_run_on_a_three_master_redis_cluster(
    fake: FakeUpstream, cluster: list[int], tmp_path: Path
) -> None:
    url = f"redis+cluster://127.0.0.1:{cluster[0]}"
    (tmp_path / "config.yaml").write_text(config_yaml(fake.base_url + "/v1"))
    port = free_ports(1)
    up = [sys.executable, "-m", "broker.cli", "up", "--config", str(tmp_path / "config.yaml")]
    up += ["--port", str(port), "--workers", "1"]
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "up.log"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
        process(up, log, REDIS_URL=url),
    ):
        await wait_until_ok(http, base + "/health/readiness", log)
        body = {"model": "gpt-test", "messages": HELLO}
        async with http.post(base + "/v1/chat/completions", json=body) as response:
            assert response.status == 200, await response.text()
            completion = await response.json()
        assert completion["choices"][0]["message"]["content"]
        stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
        headers = {"x-switchboard-lane": "batch"}
        async with http.post(base + "/v1/chat/completions", json=stream, headers=headers) as r:
            assert r.status == 200, await r.text()
            events = [line for line in (await r.text()).splitlines() if line.startswith("data:")]
            request_id = r.headers["x-request-id"]
        assert events[-1] == "data: [DONE]"
        chunks = [json.loads(event[len("data:") :]) for event in events[:-1]]
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text and chunks[-1]["usage"]["completion_tokens"] > 0
        # The reply stream lives in the cluster; a resume replays it from any front door.
        async with http.get(f"{base}/v1/streams/{request_id}") as resumed:
            assert resumed.status == 200
            replayed = [x for x in (await resumed.text()).splitlines() if x.startswith("data:")]
        assert replayed == events
    # The keys really spread over the masters: the cluster holds the reply stream.
    client = RedisCluster.from_url(f"redis://127.0.0.1:{cluster[0]}")
    try:
        assert await client.exists(f"sbcluster:{{{request_id}}}:reply") == 1
    finally:
        await client.aclose()
