"""Real Switchboard processes for tests: `switchboard up | serve | worker` as subprocesses on
the test Redis and the test's key namespace, their output kept in a file for failures."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import Path
from typing import Any, cast

import aiohttp
from redis.asyncio import Redis

from tests.broker.harness import config_text
from workers import redis_streams
from workers.envelopes import decode_envelope
from workers.redis_streams import Keys

SWITCHBOARD = str(Path(sys.executable).with_name("switchboard"))
# Process start-up imports a lot; the machine may be busy. Generous, never slept through.
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 45.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(directory: Path, upstream_v1: str, namespace: str, **kwargs: Any) -> Path:
    path = directory / "config.yaml"
    path.write_text(config_text(upstream_v1, namespace, **kwargs))
    return path


def environment(redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Process:
    """One `switchboard ...` process; stdout and stderr go to a log file."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    async def wait(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        async with asyncio.timeout(timeout_s):
            while True:
                code = self.popen.poll()
                if code is not None:
                    return code
                await asyncio.sleep(0.05)

    async def stop(self) -> int:
        """SIGTERM, then SIGKILL to the whole group if it does not stop in time."""
        if self.popen.poll() is None:
            self.send(signal.SIGTERM)
            try:
                return await self.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait()
                raise AssertionError(f"{self.argv} did not stop:\n{self.output()}") from None
        return self.popen.returncode


@contextlib.asynccontextmanager
async def switchboard(
    *args: str,
    directory: Path,
    redis_url: str | None,
    name: str = "switchboard",
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Process]:
    """Run `switchboard <args>` (with `env` over this process's environment); stop it
    (SIGTERM) on the way out."""
    environ = {**environment(redis_url), **(env or {})}
    process = Process([SWITCHBOARD, *args], environ, directory / f"{name}.log")
    try:
        yield process
    finally:
        await process.stop()


def _bearer(key_file: Path | None) -> dict[str, str]:
    if key_file is None or not key_file.exists():
        return {}
    return {"Authorization": f"Bearer {key_file.read_text(encoding='utf-8').strip()}"}


async def wait_ready(
    base_url: str, *, workers: int, processes: tuple[Process, ...], key_file: Path | None = None
) -> dict[str, Any]:
    """Wait until the front door reports ready with `workers` live workers. With a master
    key (`key_file`, as `up --demo` writes it), readiness shows its figures to that key."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(START_TIMEOUT_S):
        while True:
            for process in processes:
                if process.popen.poll() is not None:
                    raise AssertionError(f"{process.argv} exited early:\n{process.output()}")
            headers = _bearer(key_file)
            with contextlib.suppress(aiohttp.ClientError, KeyError):
                async with http.get(base_url + "/health/readiness", headers=headers) as response:
                    body: dict[str, Any] = await response.json()
                    if response.status == 200 and body["live_workers"] >= workers:
                        return body
            await asyncio.sleep(0.1)


async def worker_pids(redis: Redis, namespace: str) -> dict[str, int]:
    """Live worker id -> pid, from the workers' own heartbeat records."""
    keys = Keys(namespace)
    pids = {}
    for raw in await redis.zrange(keys.heartbeats, 0, -1):
        worker_id = raw.decode()
        # redis-py types HGET for its sync and async clients at once.
        pid = await cast("Awaitable[bytes | None]", redis.hget(keys.worker_info(worker_id), "pid"))
        if pid is not None:
            pids[worker_id] = int(pid)
    return pids


async def held_requests(redis: Redis, lane: str, consumer: str) -> set[str]:
    """The ids of the requests a consumer (a worker) holds in a lane."""
    rows: Any = await redis.xpending_range(lane, redis_streams.GROUP, "-", "+", 1000, consumer)
    held = set()
    for row in rows:
        [(_, fields)] = await redis.xrange(lane, row["message_id"], row["message_id"])
        held.add(decode_envelope(fields[redis_streams.ENVELOPE_FIELD]).request_id)
    return held


def child_pids(parent: int) -> list[int]:
    """The processes whose parent is `parent` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry))
    return found


def cmdline(pid: int) -> str:
    """A process's command line, words joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


async def chat_load(
    url: str, requests: int, answered: list[str], *, clients: int, pause_s: float = 0.0
) -> None:
    """`requests` chat completions from `clients` concurrent clients, each pausing `pause_s`
    between its requests; every one must be a 200, its request id appended to `answered`."""
    todo = iter(range(requests))
    body = {"model": "gpt-test", "messages": [{"role": "user", "content": "trace me"}]}
    async with aiohttp.ClientSession() as http:

        async def client() -> None:
            for _ in todo:
                async with http.post(url + "/v1/chat/completions", json=body) as response:
                    assert response.status == 200, await response.text()
                    answered.append(response.headers["x-request-id"])
                await asyncio.sleep(pause_s)

        await asyncio.gather(*(client() for _ in range(clients)))
