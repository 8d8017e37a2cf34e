"""Issue #17 with real processes: two front doors (`serve`) and two workers on one Redis
and a private PostgreSQL of the test's own (the machine's is shared and never stopped).

- limits are exact across the front doors: rpm_limit 50 under 200 concurrent requests
  admits exactly 50; max_parallel_requests 3 admits exactly 3 at once;
- a worker killed (kill -9) mid-request releases its lease: another worker takes the
  request over and, with its answer, the lease goes back;
- the ledger loses and doubles nothing: under load, the front door whose ledger writer
  holds a batch is killed -9 and PostgreSQL is stopped for a while; database keys keep
  working meanwhile (the request path does not use the database), and afterwards every
  answered request has exactly one spend row and the key's total is their sum."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from tests.broker.management.conftest import MASTER, Api, general
from tests.broker.processes import (
    START_TIMEOUT_S,
    Process,
    free_port,
    switchboard,
    worker_pids,
    write_config,
)
from tests.db_servers import PrivatePostgres, postgres_binaries
from tests.redis_helpers import REDIS_URL
from tests.waiting import eventually
from workers.db import keys as db_keys
from workers.db.engine import Database
from workers.db.tables import spend_logs
from workers.redis_streams import Keys, TenancyKeys
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.slow

HELLO: Any = [{"role": "user", "content": "hi"}]
FAST = {
    "claim_idle_ms": 2000,
    "renew_interval_ms": 300,
    "heartbeat_interval_s": 0.2,
    "worker_ttl_s": 1.5,
    "drain_timeout_s": 5,
}
SLOW = """\
- model_name: slow-stream
  litellm_params:
    model: openai/gpt-4o-mini~chunk_delay=0.2~chunks=20
    api_base: {base}
    api_key: sk-fake
"""
# How long PostgreSQL stays down under load (the 60 s is the same path, longer).
OUTAGE_S = float(os.environ.get("SWITCHBOARD_TEST_LEDGER_OUTAGE_S", "15"))


@pytest.fixture
def private_server() -> Iterator[PrivatePostgres]:
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
    server = PrivatePostgres().init()
    server.start()
    yield server
    server.remove()


class Fleet:
    def __init__(self, urls: list[str], doors: list[Process], workers: list[Process]) -> None:
        self.urls = urls
        self.doors = doors
        self.workers = workers

    async def chat(
        self, http: aiohttp.ClientSession, key: str, door: int, model: str = "gpt-test"
    ) -> tuple[int, str | None]:
        body = {"model": model, "messages": HELLO, "stream": model == "slow-stream"}
        headers = {"Authorization": f"Bearer {key}"}
        try:
            async with http.post(
                self.urls[door] + "/v1/chat/completions", json=body, headers=headers
            ) as reply:
                await reply.read()
                return reply.status, reply.headers.get("x-request-id")
        except aiohttp.ClientError:
            return 0, None  # that front door is gone


@contextlib.asynccontextmanager
async def fleet(
    tmp_path: Path, fake: FakeUpstream, namespace: str, database_url: str
) -> AsyncIterator[Fleet]:
    config = write_config(
        tmp_path,
        fake.base_url + "/v1",
        namespace,
        general=general(database_url),
        settings=FAST,
        extra_models=SLOW.format(base=fake.base_url + "/v1"),
    )
    ports = [free_port(), free_port()]
    run: Any = {"directory": tmp_path, "redis_url": REDIS_URL}
    serve = ("serve", "--config", str(config), "--port")
    work = ("worker", "--config", str(config))
    async with (
        switchboard(*serve, str(ports[0]), name="door-a", **run) as door_a,
        switchboard(*serve, str(ports[1]), name="door-b", **run) as door_b,
        switchboard(*work, name="worker-1", **run) as worker_1,
        switchboard(*work, name="worker-2", **run) as worker_2,
    ):
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        processes = (door_a, door_b, worker_1, worker_2)
        for url in urls:
            await _ready(url, processes)
        yield Fleet(urls, [door_a, door_b], [worker_1, worker_2])


async def _ready(url: str, processes: tuple[Process, ...]) -> None:
    """Ready with both workers live (the detail is the master key's to read)."""
    headers = {"Authorization": f"Bearer {MASTER}"}
    async with aiohttp.ClientSession(headers=headers) as http, asyncio.timeout(START_TIMEOUT_S):
        while True:
            for process in processes:
                if process.popen.poll() is not None:
                    raise AssertionError(f"{process.argv} exited early:\n{process.output()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/health/readiness") as response:
                    body: dict[str, Any] = await response.json()
                    if response.status == 200 and body.get("live_workers", 0) >= 2:
                        return
            await asyncio.sleep(0.1)


@pytest.mark.timeout(240)
async def test_limits_are_exact_across_two_front_doors_and_two_workers(
    tmp_path: Path, fake: FakeUpstream, namespace: str, private_server: PrivatePostgres
) -> None:
    async with (
        fleet(tmp_path, fake, namespace, private_server.url) as service,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
    ):
        api = Api(http, service.urls[0])
        key = (await api.ok("POST", "/key/generate", {"rpm_limit": 50}))["key"]
        replies = await asyncio.gather(*(service.chat(http, key, i % 2) for i in range(200)))
        statuses = [status for status, _ in replies]
        assert statuses.count(200) == 50, statuses
        assert statuses.count(429) == 150, statuses

        key = (await api.ok("POST", "/key/generate", {"max_parallel_requests": 3}))["key"]
        replies = await asyncio.gather(
            *(service.chat(http, key, i % 2, "slow-stream") for i in range(20))
        )
        statuses = [status for status, _ in replies]
        assert statuses.count(200) == 3 and statuses.count(429) == 17, statuses


@pytest.mark.timeout(240)
async def test_a_worker_killed_mid_request_gives_its_lease_back(
    tmp_path: Path, fake: FakeUpstream, namespace: str, private_server: PrivatePostgres
) -> None:
    async with (
        fleet(tmp_path, fake, namespace, private_server.url) as service,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
    ):
        api = Api(http, service.urls[0])
        key = (await api.ok("POST", "/key/generate", {"max_parallel_requests": 1}))["key"]
        running = asyncio.create_task(service.chat(http, key, 0, "slow-stream"))
        redis = Redis.from_url(REDIS_URL)
        try:
            lease_key = Keys(namespace).tenancy.lease(f"key:{db_keys.hash_token(key)}")

            async def leased() -> bool:
                return int(await redis.zcard(lease_key)) == 1

            await eventually(leased, what="the request took its lease")
            assert (await service.chat(http, key, 1))[0] == 429  # one at a time
            holder = await _holding_worker(redis, namespace, service)
            os.killpg(holder.pid, signal.SIGKILL)
            status, _ = await running  # finished by the other worker
            assert status == 200

            async def released() -> bool:
                return int(await redis.zcard(lease_key)) == 0

            await eventually(released, what="the lease went back", timeout_s=10)
            assert (await service.chat(http, key, 1))[0] == 200
        finally:
            await redis.aclose()


async def _holding_worker(redis: Redis, namespace: str, service: Fleet) -> Process:
    keys = Keys(namespace)
    for _ in range(200):
        summary: Any = await redis.xpending(keys.lane("default"), "workers")
        if summary["pending"]:
            consumer = summary["consumers"][0]["name"]
            consumer = consumer.decode() if isinstance(consumer, bytes) else consumer
            pid = (await worker_pids(redis, namespace))[consumer]
            return next(w for w in service.workers if w.pid == pid)
        await asyncio.sleep(0.05)
    raise AssertionError("no worker holds the request")


@pytest.mark.timeout(300)
async def test_the_ledger_writes_every_request_once_across_a_kill_and_a_database_outage(
    tmp_path: Path, fake: FakeUpstream, namespace: str, private_server: PrivatePostgres
) -> None:
    async with (
        fleet(tmp_path, fake, namespace, private_server.url) as service,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
    ):
        api = Api(http, service.urls[0])
        key = (await api.ok("POST", "/key/generate", {"key_alias": "load"}))["key"]
        answered: list[str] = []
        stop = asyncio.Event()

        async def load(door: int) -> None:
            while not stop.is_set():
                status, request_id = await service.chat(http, key, door)
                if status == 200 and request_id is not None:
                    answered.append(request_id)
                elif status == 0:
                    door = 1  # the killed front door's clients move to the other

        loaders = [asyncio.create_task(load(i % 2)) for i in range(8)]
        await eventually(lambda: len(answered) >= 40, what="load", timeout_s=30)
        os.killpg(service.doors[0].pid, signal.SIGKILL)  # its ledger writer with it
        private_server.stop()
        before_outage = len(answered)
        await asyncio.sleep(OUTAGE_S)  # the scenario: the database stays down under load
        assert len(answered) > before_outage + 10, "database keys stopped working"
        private_server.start()
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*loaders)

        redis = Redis.from_url(REDIS_URL)
        try:
            ledger = Keys(namespace).tenancy.ledger

            async def drained() -> bool:
                summary: Any = await redis.xpending(ledger, TenancyKeys.LEDGER_GROUP)
                return int(await redis.xlen(ledger)) == 0 and summary["pending"] == 0

            await eventually(drained, what="the ledger backlog drained", timeout_s=90)
        finally:
            await redis.aclose()
    database = Database(private_server.url)
    try:
        token = db_keys.hash_token(key)
        async with database.transaction() as conn:
            statement = sa.select(spend_logs.c.request_id, spend_logs.c.spend).where(
                spend_logs.c.api_key == token
            )
            rows = [dict(r) for r in (await conn.execute(statement)).mappings()]
            row = await db_keys.get(conn, token)
    finally:
        await database.close()
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert set(answered) <= set(ids), set(answered) - set(ids)
    # A request the killed front door admitted but never answered has its row too.
    assert len(ids) - len(answered) <= 8
    assert row is not None
    assert row["spend"] == pytest.approx(sum(r["spend"] for r in rows))
