"""No secret reaches a log line (issue #13, item 3): real `switchboard up` processes (the
supervisor's front door, a second front door as a `serve` child, a worker child, all at
DEBUG) take malformed header lines that hold a key, keys that are not text, keys without
`Bearer`, wrong keys and good ones; afterwards no process's output holds any of the keys,
aiohttp logged no ERROR, and each front door logged the malformed requests as one WARNING
line."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path

import aiohttp
import pytest

from tests.broker.processes import START_TIMEOUT_S, free_port, switchboard, write_config
from tests.redis_helpers import REDIS_URL
from tests.waiting import eventually
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.slow

MASTER = "sk-master-logs-Q7w9E2r4T6y8U1i3"
TEAM = "sk-team-logs-A1s2D3f4G5h6J7k8"
UPSTREAM = "sk-upstream-logs-Z9x8C7v6B5n4M3"
# A key the gateway does not know: masked by its shape, not by the config.
STRANGER = "sk-proj-stranger-P0o9I8u7Y6t5R4e3"
SECRETS = (MASTER, TEAM, UPSTREAM, STRANGER)
HELLO = b'{"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}'
MALFORMED_ROUNDS = 10


def requests() -> list[bytes]:
    """Header sets that hold a key: malformed ones first, then ones that parse."""

    def chat(*headers: bytes) -> bytes:
        head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(HELLO)
        return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + HELLO

    malformed = []
    for key in (MASTER, STRANGER):
        k = key.encode()
        malformed += [
            chat(b"Authorization: Bearer " + k + b"\x00"),
            chat(b"x-api-key: " + k[:10] + b"\r" + k[10:]),
            chat(b"Authorization: Bearer " + k + b"x" * 9000),  # longer than a header may be
        ]
    parsed = [
        chat(b"x-api-key: " + STRANGER.encode() + b"\xff\xfe"),
        chat(b"Authorization: Bearer \xff" + MASTER.encode()),
        chat(b"Authorization: " + MASTER.encode()),
        chat(b"Authorization: Bearer " + STRANGER.encode()),
        chat(b"Authorization: Bearer " + MASTER.encode()),
        chat(b"x-api-key: " + TEAM.encode()),
    ]
    return malformed * MALFORMED_ROUNDS + parsed


async def send(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(30):
            return await reader.read(65536)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def wait_for_a_live_worker(port: int) -> None:
    headers = {"Authorization": f"Bearer {MASTER}"}
    async with aiohttp.ClientSession(headers=headers) as http:

        async def live() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/health/readiness") as response:
                    return response.status == 200 and bool((await response.json())["live_workers"])
            return False

        await eventually(live, timeout_s=START_TIMEOUT_S, poll_s=0.1, what="a live worker")


async def test_no_key_reaches_any_process_output(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> None:
    extra = f"""\
        - model_name: keyed
          litellm_params:
            model: openai/gpt-4o-mini
            api_base: {fake.base_url}/v1
            api_key: {UPSTREAM}
        """
    config = write_config(
        tmp_path,
        fake.base_url + "/v1",
        namespace,
        settings={"api_keys": f"[{{alias: team, key: {TEAM}}}]"},
        general=f"general_settings:\n  master_key: {MASTER}\n",
        extra_models=extra,
    )
    port = free_port()
    args = ["--log-level", "DEBUG", "up", "--config", str(config), "--port", str(port)]
    args += ["--workers", "1", "--front-doors", "2"]
    async with switchboard(*args, directory=tmp_path, redis_url=REDIS_URL) as up:
        await wait_for_a_live_worker(port)
        answers = [await send(port, request) for request in requests()]
    output = up.output()
    statuses = [int(answer.split(b" ", 2)[1]) for answer in answers]
    assert all(400 <= status < 500 for status in statuses[:-2]), answers
    assert statuses[-2:] == [200, 200], answers[-2:]
    assert not any(secret.encode() in answer for answer in answers for secret in SECRETS)
    for secret in SECRETS:
        assert secret not in output, f"{secret} is in the output:\n{output[-5000:]}"
    assert " ERROR " not in output, output[-5000:]
    # One WARNING per front door process for the whole burst (rate-limited), no values.
    warnings = re.findall(r"WARNING switchboard\.http\[(\d+)\] malformed HTTP request", output)
    assert 1 <= len(warnings) <= 2, warnings
    assert len(set(warnings)) == len(warnings), "a front door logged the burst twice"
