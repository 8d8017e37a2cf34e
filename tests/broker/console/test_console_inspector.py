"""The request inspector's life of a request (issue #21): admitted, the lane it waited on and
how long, the worker that ran it, each try at a deployment (status or error class, latency,
why: retry or fallback), then the final record the front door relays; carried by the worker's
final record into the spend row's metadata, so it lives as long as that row; shown by the
console in a real browser."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from tests.broker.console.browser import chromium, new_page, require_browser
from tests.broker.console.conftest import MASTER, STATIC
from tests.broker.console.test_console_browser import shot, sign_in
from tests.broker.harness import RunningFrontDoor, make_config, service
from tests.broker.management.conftest import Api, general
from workers.db import spend
from workers.db.engine import Database
from workers.db.spend import SpendRecord
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.timeout(120)
SECRET_WORDS = "the inspector must never keep this sentence"


@pytest.fixture
async def flaky_door(
    console_database: Database, console_database_url: str, namespace: str, fake: FakeUpstream
) -> AsyncIterator[RunningFrontDoor]:
    """`flaky` fails its first request (a 500) then answers; `broken` always fails and
    falls back to `gpt-test`; a request may ask for one retry."""
    base = fake.base_url + "/v1"
    models = f"""\
- model_name: flaky
  litellm_params:
    model: openai/gpt-4o-mini~fail_first=1
    api_base: {base}
    api_key: sk-fake
- model_name: broken
  litellm_params:
    model: openai/gpt-4o-mini~status=503
    api_base: {base}
    api_key: sk-fake
"""
    # config_text's router_settings section is open where `general` starts: add to it.
    router = "  fallbacks: [{broken: [gpt-test]}]\n  retry_after: 0\n"
    config = make_config(
        base,
        namespace,
        general=router + general(console_database_url),
        settings={"api_keys": f"[{{alias: static, key: {STATIC}}}]", "max_num_retries": 1},
        extra_models=models,
    )
    async with service(config, workers=1) as ([front], _):
        yield front


async def chat(door: RunningFrontDoor, model: str, **body: Any) -> tuple[int, str]:
    status, headers = await chat_headers(door, model, **body)
    return status, headers["x-request-id"]


async def chat_headers(
    door: RunningFrontDoor, model: str, **body: Any
) -> tuple[int, dict[str, str]]:
    payload = {"model": model, "messages": [{"role": "user", "content": SECRET_WORDS}], **body}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            door.url + "/v1/chat/completions",
            json=payload,
            headers={"Authorization": f"Bearer {MASTER}"},
        ) as reply,
    ):
        await reply.read()
        return reply.status, {name.lower(): value for name, value in reply.headers.items()}


async def spend_row(api: Api, request_id: str) -> dict[str, Any]:
    """The request's spend row, once the ledger has written it."""
    async with asyncio.timeout(15):
        while True:
            found = await api.ok("GET", "/spend/logs", request_id=request_id)
            if found:
                return dict(found[0])
            await asyncio.sleep(0.1)


async def test_each_attempt_of_a_request_is_kept_with_its_spend_row(
    flaky_door: RunningFrontDoor,
) -> None:
    async with aiohttp.ClientSession() as http:
        api = Api(http, flaky_door.url)
        status, headers = await chat_headers(flaky_door, "flaky", num_retries=1)
        assert status == 200
        row = await spend_row(api, headers["x-request-id"])
        life = row["metadata"]
        assert life["queue"]["lane"] == "default" and life["queue"]["waited_ms"] >= 0
        # The worker that ran it: the one the answer's header named.
        assert life["worker"] == headers["x-switchboard-worker"] != ""
        first, second = life["attempts"]
        assert first["deployment"] == second["deployment"] == row["deployment"]
        assert first["model_group"] == "flaky" and first["status"] == "InternalServerError"
        assert first.get("reason", "") == "" and first["latency_ms"] > 0
        assert second["status"] == "ok" and second["reason"] == "retry"

        status, fell_back = await chat(flaky_door, "broken")
        assert status == 200
        attempts = (await spend_row(api, fell_back))["metadata"]["attempts"]
        assert [(a["model_group"], a["status"], a.get("reason", "")) for a in attempts] == [
            ("broken", "ServiceUnavailableError", ""),
            ("gpt-test", "ok", "fallback"),
        ]
        # No message content in the record (message logging is off).
        assert SECRET_WORDS not in str(row) and SECRET_WORDS not in str(attempts)


async def test_the_inspector_page_shows_the_attempts(flaky_door: RunningFrontDoor) -> None:
    executable = require_browser()
    status, headers = await chat_headers(flaky_door, "flaky", num_retries=1)
    assert status == 200
    request_id, worker = headers["x-request-id"], headers["x-switchboard-worker"]
    async with aiohttp.ClientSession() as http:
        row = await spend_row(Api(http, flaky_door.url), request_id)
    async with chromium(executable) as browser:
        page = await new_page(browser)
        await sign_in(page, flaky_door.url, MASTER)
        await page.get_by_role("link", name="Request inspector").click()
        await page.locator("#inspect-id").fill(request_id)
        await page.get_by_role("button", name="Inspect").click()
        # Its life in order: admitted, queued, the worker, the attempts, the final record.
        admitted = row["start_time"].replace("T", " ")[:23]
        await page.get_by_test_id("admitted").get_by_text(admitted).wait_for()
        await page.get_by_test_id("queued").get_by_text("lane default").wait_for()
        await page.get_by_test_id("worker").get_by_text(f"Run by worker {worker}.").wait_for()
        relayed = row["end_time"].replace("T", " ")[:23]
        await page.get_by_test_id("relayed").get_by_text(relayed).wait_for()
        steps = await page.locator("ol.life > li").evaluate_all(
            "items => items.map(i => i.dataset.testid || 'attempts')"
        )
        assert steps == ["admitted", "queued", "worker", "attempts", "relayed"]
        attempts = page.locator("table", has_text="Attempts")
        rows = attempts.locator("tbody tr")
        await rows.nth(1).wait_for()
        assert await rows.count() == 2
        assert "InternalServerError" in (await rows.nth(0).text_content() or "")
        second = await rows.nth(1).text_content() or ""
        assert "ok" in second and "retry" in second
        await shot(page, "request-inspector-attempts")
        await page.context.close()


async def test_a_team_admin_inspects_its_teams_requests_and_no_others(
    door: RunningFrontDoor, api: Api, console_database: Database
) -> None:
    """/spend/logs by request id alone answers a team admin's own requests; the page also
    asks with each team it administers, and the API still refuses other teams'."""
    executable = require_browser()
    await api.ok("POST", "/team/new", {"team_id": "core"})
    lead = await api.ok("POST", "/user/new", {"user_id": "lead", "teams": ["core"]})
    await api.ok(
        "POST", "/team/member_update", {"team_id": "core", "user_id": "lead", "role": "admin"}
    )
    started = datetime.now(UTC) - timedelta(minutes=1)
    rows = [
        SpendRecord(
            request_id=f"req_{team}",
            call_type="chat.completions",
            api_key=f"{team}-key-hash",
            model="gpt-test",
            model_group="gpt-test",
            deployment=f"{team}-deployment",
            start_time=started,
            end_time=started,
            user_id="someone",
            team_id=team,
        )
        for team in ("core", "elsewhere")
    ]
    async with console_database.transaction() as conn:
        await spend.record_spend(conn, rows)
    async with chromium(executable) as browser:
        page = await new_page(browser)
        await sign_in(page, door.url, lead["key"])
        await page.get_by_role("link", name="Request inspector").click()
        await page.locator("#inspect-id").fill("req_core")
        await page.get_by_role("button", name="Inspect").click()
        await page.locator("dl.record").get_by_text("core-deployment").wait_for()
        await page.locator("#inspect-id").fill("req_elsewhere")
        await page.get_by_role("button", name="Inspect").click()
        await page.get_by_text("No record of this request yet").wait_for()
        assert await page.get_by_text("elsewhere-deployment").count() == 0
        await page.context.close()
