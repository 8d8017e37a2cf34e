"""Issue #13, Done means: the fuzz test. A real front door and a real worker on the real
Redis, the fake upstream behind OpenAI, Anthropic and Gemini deployments (and Azure, Bedrock
and Claude-on-Vertex ones for the pass-through), a master key and two scoped keys. Over 3,000
generated requests across every operation of /openapi.json (bodies from its schemas with
hostile numbers, nesting, wrong types and unknown fields; header sets of every key scope,
content types, lanes, encodings) and a set of raw-socket header probes (non-UTF-8 bytes, NUL,
CR, broken framing). Then: no response of 500 or more, every error body in the API's shape,
the service ready, nothing pending in Redis.

Bounded in count (the numbers in fuzz_plan.py) and time (asyncio.timeout around each phase),
and reproducible: hypothesis generates derandomized, in a process of its own (fuzz_plan.py
says why), so CI and a laptop send the same requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from yarl import URL

from broker.config.loader import load_config_text
from broker.openapi import build_document
from tests.broker.harness import RunningFrontDoor, service, wait_until
from tests.security import fuzz_plan, raw_http
from tests.security.fuzz_cases import RECENT_ID, Case
from tests.security.fuzz_checks import (
    Tally,
    causes_logged,
    check,
    describe,
    error_label,
    error_shape_problem,
    kind_of,
)
from workers.providers.vertex.auth import token_for
from workers.redis_streams import Keys
from workers.testing.google_oauth import service_account
from workers.testing.server import FakeUpstream

MIN_REQUESTS = 3_000
IN_FLIGHT = 12
SEND_TIMEOUT_S = 240
SETTLE_TIMEOUT_S = 60
RAW_TIMEOUT_S = 10


# -------------------------------------------------------------------------------- sending


FAKE = fuzz_plan.FAKE.encode()


class Sender:
    def __init__(
        self, url: str, port: int, fake_url: str, http: aiohttp.ClientSession, tally: Tally
    ) -> None:
        self.url = url
        self.port = port
        self.fake_url = fake_url.encode()
        self.http = http
        self.tally = tally
        self.request_ids: list[str] = []
        self.gate = asyncio.Semaphore(IN_FLIGHT)

    def path_of(self, case: Case, index: int) -> str:
        if RECENT_ID not in case.path:
            return case.path
        ids = self.request_ids or ["req_none"]
        recent = ids[-1 - index % min(20, len(ids))]
        return case.path.replace(RECENT_ID, recent)

    async def send(self, case: Case, index: int) -> None:
        has_type = any(name.lower() == "content-type" for name, _ in case.headers)
        path = self.path_of(case, index)
        body = case.body.replace(FAKE, self.fake_url) if case.body is not None else None
        async with self.gate:
            try:
                async with self.http.request(
                    case.method,
                    URL(self.url + path, encoded=True),
                    headers=case.headers,
                    data=body,
                    skip_auto_headers=() if has_type else ("Content-Type",),
                    allow_redirects=False,
                ) as response:
                    answer = await response.read()
                    status, content_type = response.status, response.content_type
                    request_id = response.headers.get("x-request-id")
                    relayed = "x-switchboard-passthrough" in response.headers
            except ValueError as exc:  # the client would not send it
                self.tally.unsent[str(exc)[:60]] += 1
                return
            except aiohttp.ClientConnectionError:
                # aiohttp's client reports a reply that came before the body was sent (a 401
                # to a large body) as a broken connection: send it again raw and read.
                probe = raw_case(case, path, body)
                reply = await raw_http.send(self.port, probe, timeout_s=RAW_TIMEOUT_S)
                status, answer, request_id = reply.status, reply.body, None
                relayed = "x-switchboard-passthrough" in reply.headers
                content_type = reply.headers.get("content-type", "").split(";")[0].strip()
        self.tally.sent[case.operation] += 1
        if request_id and case.method == "POST":
            self.request_ids.append(request_id)
        if status in (raw_http.CLOSED, raw_http.NO_ANSWER):
            what = "closed without a response" if status == raw_http.CLOSED else "no response"
            self.tally.statuses[status] += 1
            self.tally.problem((what, case.operation, kind_of(case)), describe(case))
            return
        if relayed:
            # A provider pass-through's answer is the provider's own, in its own shape (the
            # fake's here); only a 5xx from it would be a finding.
            self.tally.statuses[status] += 1
            if status >= 500:
                self.tally.problem(
                    (f"pass-through status {status}", case.operation), describe(case)
                )
            return
        check(case, status, content_type, answer, self.tally)


def raw_case(case: Case, path: str, body: bytes | None) -> raw_http.Probe:
    headers = [f"{name}: {value}".encode() for name, value in case.headers]
    return raw_http.Probe(
        case.operation, raw_http.request(case.method.encode(), path.encode(), headers, body)
    )


async def send_probe(
    port: int, probe: raw_http.Probe, gate: asyncio.Semaphore, tally: Tally
) -> None:
    async with gate:
        reply = await raw_http.send(port, probe, timeout_s=RAW_TIMEOUT_S)
    tally.statuses[reply.status] += 1
    where = f"{probe.name} ({probe.request[:100]!r})"
    if reply.status == raw_http.CLOSED and probe.half_close:
        return  # the client gave up on its own request: closing is an answer
    if reply.status == raw_http.NO_ANSWER:
        tally.problem((f"raw: no answer in {RAW_TIMEOUT_S} s", probe.kind), where)
    elif reply.status == raw_http.CLOSED:
        tally.problem(("raw: closed without a response", probe.kind), where)
    elif reply.status >= 500:
        label = error_label(reply.body)
        tally.problem((f"raw: status {reply.status}", probe.kind, label), where)
    if reply.status >= 400:
        shape = error_shape_problem(reply.body)
        content_type = reply.headers.get("content-type", "").split(";")[0]
        if shape or content_type != "application/json":
            reason = shape or f"content type {content_type}"
            example = where + f" -> {reply.body[:80]!r}"
            tally.problem((f"raw: {reason}", probe.kind, f"status {reply.status}"), example)


# -------------------------------------------------------------------------------- settling


async def settled(redis: Redis, keys: Keys) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for lane in fuzz_plan.LANES:
        name = keys.lane(lane)
        pending = await redis.xpending(name, "workers") if await redis.exists(name) else None
        state[lane] = {
            "pending": pending["pending"] if pending else 0,
            "length": await redis.xlen(name),
        }
    state["dead_letters"] = await redis.xlen(keys.dead_letter)
    return state


def is_quiet(state: dict[str, Any]) -> bool:
    lanes_quiet = all(state[lane] == {"pending": 0, "length": 0} for lane in fuzz_plan.LANES)
    return lanes_quiet and state["dead_letters"] == 0


@pytest.fixture
async def fuzzed(
    fake: FakeUpstream, namespace: str, tmp_path: Path
) -> AsyncIterator[tuple[RunningFrontDoor, fuzz_plan.Plan, str]]:
    generated = await asyncio.to_thread(fuzz_plan.load)
    database_url = f"sqlite:///{tmp_path / 'switchboard.db'}"
    storage_dir = str(tmp_path / "files")
    # A service account the fake's token endpoint trusts (made in this process, which runs
    # the fake), for the Claude-on-Vertex deployment.
    credentials = tmp_path / "service-account.json"
    account = service_account(fake.base_url + "/token", project=fuzz_plan.VERTEX_PROJECT)
    credentials.write_text(json.dumps(account))
    token_for.cache_clear()
    text = fuzz_plan.config_text(
        fake.base_url, namespace, database_url, storage_dir, str(credentials)
    )
    config = load_config_text(text)
    async with service(config) as ([door], _workers):
        yield door, generated, fake.base_url


async def send_all(
    door: RunningFrontDoor, generated: fuzz_plan.Plan, fake_url: str, tally: Tally
) -> None:
    port = door.runner.addresses[0][1]
    timeout = aiohttp.ClientTimeout(total=fuzz_plan.REQUEST_TIMEOUT_S * 2)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(door.url + "/openapi.json") as response:
            # The cases were generated from this very document.
            assert json.loads(await response.read()) == build_document()
        sender = Sender(door.url, port, fake_url, http, tally)
        cases = generated.cases
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await asyncio.gather(*(sender.send(case, i) for i, case in enumerate(cases)))
    gate = asyncio.Semaphore(IN_FLIGHT)
    probes = generated.probes
    async with asyncio.timeout(SEND_TIMEOUT_S):
        await asyncio.gather(*(send_probe(port, probe, gate, tally) for probe in probes))


async def settle(redis: Redis, namespace: str) -> dict[str, Any]:
    """Wait (bounded) until no lane holds an entry, pending or waiting; the last state seen."""
    keys = Keys(namespace)
    state: dict[str, Any] = {}

    async def is_settled() -> bool:
        state.update(await settled(redis, keys))
        return is_quiet(state)

    with contextlib.suppress(TimeoutError):  # the caller asserts on the state
        await wait_until(is_settled, SETTLE_TIMEOUT_S)
    return state


@pytest.mark.timeout(600)
async def test_no_generated_request_gets_a_5xx_or_a_non_json_error(
    fuzzed: tuple[RunningFrontDoor, fuzz_plan.Plan, str],
    redis: Redis,
    namespace: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    door, generated, fake_url = fuzzed
    tally = Tally()
    started = time.monotonic()
    with causes_logged() as causes:
        await send_all(door, generated, fake_url, tally)
    state = await settle(redis, namespace)
    async with aiohttp.ClientSession() as http, http.get(door.url + "/health/readiness") as ready:
        readiness = ready.status, await ready.text()

    seconds = time.monotonic() - started
    report = tally.summary(seconds, len(generated.probes), causes.counts)
    report += f"\n  afterwards: Redis {state}; readiness {readiness[0]}"
    with capsys.disabled():
        print("\n" + report)
    operations = {
        op["operationId"] for item in build_document()["paths"].values() for op in item.values()
    }
    assert sum(tally.sent.values()) >= MIN_REQUESTS, report
    assert set(tally.sent) >= operations, report
    assert not tally.problems, report
    assert not causes.counts, report
    assert is_quiet(state), f"Redis did not settle in {SETTLE_TIMEOUT_S} s: {state}"
    assert readiness[0] == 200, readiness
