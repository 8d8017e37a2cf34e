"""Issue #22's "everything on" configuration: the gateway as a multi-tenant user runs it. A
database virtual key with rpm/tpm limits and a budget (so every request is admitted against
them in Redis and its spend goes through the ledger into SQLite), Prometheus (always on), and
one callback: `otel` to a local OTLP/HTTP receiver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from benchmarks.gateways import MASTER_KEY

# Limits far above the load, so every request is admitted and every one is counted.
LIMITS = {"rpm_limit": 10**9, "tpm_limit": 10**12, "max_parallel_requests": 10_000}


def with_database(config: Path, data_dir: Path) -> None:
    text: dict[str, Any] = yaml.safe_load(config.read_text())
    text["general_settings"]["database_url"] = f"sqlite:///{data_dir / 'switchboard.db'}"
    config.write_text(yaml.safe_dump(text, sort_keys=False))


def everything_on(config: Path, out: Path, data_dir: Path, otlp_url: str) -> Path:
    """A copy of `config` at `out` with the database and the `otel` callback."""
    text: dict[str, Any] = yaml.safe_load(config.read_text())
    text["general_settings"]["database_url"] = f"sqlite:///{data_dir / 'switchboard.db'}"
    text["litellm_settings"]["callbacks"] = ["otel"]
    text["callback_settings"] = {"otel": {"endpoint": otlp_url}}
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
    that the callback's cost is the gateway's, not the receiver's (it runs in the client)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/v1/traces"
        self.exports = 0
        self.bytes = 0
        self._runner: web.AppRunner | None = None

    async def _traces(self, request: web.Request) -> web.Response:
        self.bytes += len(await request.read())
        self.exports += 1
        # An empty ExportTraceServiceResponse: every span accepted.
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def __aenter__(self) -> OtlpSink:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
