"""The dependency audit step (tests/security/audit_dependencies.py) against a local OSV
service: it fails on a known vulnerability, passes a clean set, and says SKIPPED, passing,
when no advisory service answers (unless SWITCHBOARD_REQUIRE_AUDIT=1)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parents[2]
VULNERABLE = "msgspec"
ADVISORY_ID = "GHSA-test-0000-0000"
ADVISORY: dict[str, Any] = {
    "id": ADVISORY_ID,
    "summary": "a made-up advisory for this test",
    "details": "a made-up advisory for this test",
    "aliases": ["CVE-0000-00000"],
    "affected": [
        {
            "package": {"name": VULNERABLE, "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "999.0"}]}],
        }
    ],
}


async def osv(advisories: dict[str, list[dict[str, Any]]]) -> tuple[web.AppRunner, str]:
    async def query(request: web.Request) -> web.Response:
        asked = await request.json()
        return web.json_response({"vulns": advisories.get(asked["package"]["name"], [])})

    app = web.Application()
    app.router.add_post("/v1/query", query)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/v1/query"


async def audit(*args: str, require: bool = False) -> tuple[int, str]:
    env = {**os.environ, "SWITCHBOARD_REQUIRE_AUDIT": "1" if require else "0"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.security.audit_dependencies",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr.decode()


@pytest.fixture
async def advisories() -> AsyncIterator[tuple[dict[str, list[dict[str, Any]]], str]]:
    known: dict[str, list[dict[str, Any]]] = {}
    runner, url = await osv(known)
    yield known, url
    await runner.cleanup()


async def test_a_known_vulnerability_in_the_lock_fails_the_audit(
    advisories: tuple[dict[str, list[dict[str, Any]]], str],
) -> None:
    known, url = advisories
    known[VULNERABLE] = [ADVISORY]
    code, output = await audit("-s", "osv", "--osv-url", url)
    assert code == 1, output
    assert "FAILED" in output and VULNERABLE in output and ADVISORY_ID in output


async def test_a_clean_lock_passes_the_audit(
    advisories: tuple[dict[str, list[dict[str, Any]]], str],
) -> None:
    _, url = advisories
    code, output = await audit("-s", "osv", "--osv-url", url)
    assert code == 0, output
    assert "passed" in output


async def test_an_unreachable_service_is_a_skip_that_says_so() -> None:
    # Nothing listens on port 9 (discard) here: the connection is refused at once.
    unreachable = ("-s", "osv", "--osv-url", "http://127.0.0.1:9/v1/query", "--timeout", "5")
    code, output = await audit(*unreachable)
    assert (code, "SKIPPED, nothing was audited" in output) == (0, True), output
    code, output = await audit(*unreachable, require=True)
    assert code == 1, output
