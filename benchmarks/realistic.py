"""Issue #22's "everything on" configuration: the gateway as a multi-tenant user runs it. A
database virtual key with rpm/tpm limits and a budget (so every request is admitted against
them in Redis and its spend goes through the ledger into SQLite), Prometheus (always on), and
one callback: `otel` to a local OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks.gateways import MASTER_KEY

# How long the sink's process may take to answer.
READY_TIMEOUT_S = 30.0
# Limits far above the load, so every request is admitted and every one is counted.
LIMITS = {"rpm_limit": 10**9, "tpm_limit": 10**12, "max_parallel_requests": 10_000}


def with_database(config: Path, data_dir: Path) -> None:
    text: dict[str, Any] = yaml.safe_load(config.read_text())
    text["general_settings"]["database_url"] = f"sqlite:///{data_dir / 'switchboard.db'}"
    config.write_text(yaml.safe_dump(text, sort_keys=False))


def everything_on(
    config: Path, out: Path, data_dir: Path, otlp_url: str | None, *, sample_rate: float = 1.0
) -> Path:
    """A copy of `config` at `out` with the database and the `otel` callback (none when
    `otlp_url` is None: the baseline of what the callback costs), tracing `sample_rate` of
    the requests."""
    text: dict[str, Any] = yaml.safe_load(config.read_text())
    text["general_settings"]["database_url"] = f"sqlite:///{data_dir / 'switchboard.db'}"
    if otlp_url is not None:
        text["litellm_settings"]["callbacks"] = ["otel"]
        text["callback_settings"] = {"otel": {"endpoint": otlp_url, "sample_rate": sample_rate}}
    data_dir.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(text, sort_keys=False))
    return out


async def database_key(port: int) -> str:
    """A team with a budget and limits, and a key in it with its own: what admission checks."""
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(headers=headers) as http:
        team = {"team_id": "bench", "max_budget": 10**9, **LIMITS}
        async with http.post(base + "/team/new", json=team) as reply:
            assert reply.status == 200, await reply.text()
        key = {"team_id": "bench", "max_budget": 10**9, "budget_duration": "30d", **LIMITS}
        async with http.post(base + "/key/generate", json=key) as reply:
            assert reply.status == 200, await reply.text()
            return str((await reply.json())["key"])


class OtlpSink:
    """A local OTLP/HTTP endpoint that takes every export and counts it, decoding nothing, so
    that the callback's cost is the gateway's, not the receiver's: a process of its own
    (benchmarks/otlp_sink.py), which the counts are read back from."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/v1/traces"
        self._folder = tempfile.TemporaryDirectory(prefix="otlp-sink-")
        self._counts = Path(self._folder.name, "counts")
        self._process: asyncio.subprocess.Process | None = None

    @property
    def exports(self) -> int:
        return self._read()[0]

    @property
    def bytes(self) -> int:
        return self._read()[1]

    def _read(self) -> tuple[int, int]:
        try:
            exports, taken = self._counts.read_text().split()
        except (OSError, ValueError):  # not started yet
            return 0, 0
        return int(exports), int(taken)

    async def __aenter__(self) -> OtlpSink:
        argv = [sys.executable, "-m", "benchmarks.otlp_sink", "--port", str(self.port)]
        self._process = await asyncio.create_subprocess_exec(*argv, "--counts", str(self._counts))
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/ready") as reply:
                        if reply.status == 200:
                            return self
                except aiohttp.ClientConnectionError:
                    pass
                if self._process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the OTLP sink did not start")
                await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            await asyncio.wait_for(self._process.wait(), 10)
        self._folder.cleanup()
